"""Window attention against torchvision's own Swin and MaxViT functions and modules: equal
outputs and gradients for Swin v1 and v2, padded, shifted or neither, and MaxViT's; mistakes are
one line naming the parameter and what was given."""

import pytest
import torch
from torchvision.models.maxvit import RelativePositionalMultiHeadAttention
from torchvision.models.swin_transformer import (
    ShiftedWindowAttention,
    ShiftedWindowAttentionV2,
    _patch_merging_pad,
    shifted_window_attention,
)

from grownet.layers.shape import patch_merge
from grownet.layers.window import (
    GroupAttention,
    WindowAttention,
    log_spaced_offsets,
    relative_position_index,
    window_attention,
)

# version, map (H, W), window, shift: whole windows, a padded map, a window larger than the map
# (no shift there, as torchvision), unequal sides
CASES = [
    (1, (8, 8), (4, 4), (0, 0)),
    (1, (8, 8), (4, 4), (2, 2)),
    (1, (9, 5), (4, 4), (2, 2)),
    (1, (3, 10), (4, 4), (2, 2)),
    (1, (6, 9), (2, 3), (1, 1)),
    (2, (8, 8), (4, 4), (2, 2)),
    (2, (9, 5), (4, 4), (0, 0)),
    (2, (6, 9), (2, 3), (1, 2)),
]


def _pair(version, window, shift, dim=8, heads=2):
    """torchvision's module with random weights, and ours holding them."""
    torch.manual_seed(0)
    cls = ShiftedWindowAttention if version == 1 else ShiftedWindowAttentionV2
    theirs = cls(dim, list(window), list(shift), heads)
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_(0, 0.5)
    ours = WindowAttention(dim, heads=heads, window=window, shift=shift, version=version)
    buffers = ("relative_position_index", "relative_coords_table")
    ours.load_state_dict({k: v for k, v in theirs.state_dict().items() if k not in buffers})
    return theirs, ours


@pytest.mark.parametrize(("version", "size", "window", "shift"), CASES)
def test_computes_what_torchvision_computes_with_its_gradients(version, size, window, shift):
    theirs, ours = _pair(version, window, shift)
    x = torch.randn(2, *size, 8, requires_grad=True)
    want = theirs(x)
    got = ours(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    grad = torch.randn_like(want)
    (want_x,) = torch.autograd.grad(want, x, grad)
    (got_x,) = torch.autograd.grad(got, x, grad)
    torch.testing.assert_close(got_x, want_x, rtol=0, atol=1e-5)
    mine = dict(ours.named_parameters())
    for name, weight in theirs.named_parameters():
        (want_w,) = torch.autograd.grad(theirs(x), weight, grad)
        (got_w,) = torch.autograd.grad(ours(x), mine[name], grad)
        torch.testing.assert_close(got_w, want_w, rtol=0, atol=1e-4, msg=name)


@pytest.mark.parametrize(("dim", "head_dim", "size"), [(8, 4, 3), (12, 4, 2), (8, 8, 1)])
def test_group_attention_computes_what_maxvits_attention_does(dim, head_dim, size):
    torch.manual_seed(0)
    theirs = RelativePositionalMultiHeadAttention(dim, head_dim, size * size)
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_(0, 0.5)
    ours = GroupAttention(dim, heads=dim // head_dim, window=(size, size),
                          scale=theirs.scale_factor)  # fmt: skip
    ours.load_state_dict({k: v for k, v in theirs.state_dict().items()
                          if k != "relative_position_index"})  # fmt: skip
    x = torch.randn(2, 5, size * size, dim, requires_grad=True)
    want, got = theirs(x), ours(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    grad = torch.randn_like(want)
    wrt = [x, *theirs.parameters()], [x, *ours.parameters()]
    for a, b in zip(torch.autograd.grad(want, wrt[0], grad), torch.autograd.grad(got, wrt[1], grad),
                    strict=True):  # fmt: skip
        torch.testing.assert_close(b, a, rtol=0, atol=1e-4)


@pytest.mark.parametrize("version", [1, 2])
def test_the_function_takes_torchvisions_position_bias(version):
    theirs, ours = _pair(version, (4, 4), (2, 2))
    x = torch.randn(1, 6, 7, 8)
    want = shifted_window_attention(
        x, theirs.qkv.weight, theirs.proj.weight, theirs.get_relative_position_bias(), [4, 4], 2,
        [2, 2], qkv_bias=theirs.qkv.bias, proj_bias=theirs.proj.bias,
        logit_scale=theirs.logit_scale if version == 2 else None, training=False,
    )  # fmt: skip
    got = window_attention(
        x, ours.qkv.weight, ours.qkv.bias, ours.proj.weight, ours.proj.bias,
        theirs.get_relative_position_bias()[0], heads=2, window=(4, 4), shift=(2, 2),
        logit_scale=ours.logit_scale if version == 2 else None,
    )  # fmt: skip
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("window", [(7, 7), (2, 5)])
def test_offset_tables_are_torchvisions(window):
    theirs = ShiftedWindowAttentionV2(4, list(window), [0, 0], 2)
    index = theirs.relative_position_index.view(window[0] * window[1], -1)
    assert torch.equal(relative_position_index(window), index)
    assert torch.equal(log_spaced_offsets(window), theirs.relative_coords_table[0])


@pytest.mark.parametrize("size", [(4, 6), (5, 7), (1, 1)])
def test_patch_merge_is_torchvisions(size):
    x = torch.randn(2, *size, 3)
    assert torch.equal(patch_merge(x), _patch_merging_pad(x))


QKV, PROJ = torch.zeros(24, 8), torch.zeros(8, 8)


@pytest.mark.parametrize(
    ("shape", "kwargs", "message"),
    [
        ((8, 8, 8), {}, r"x must be \(N, H, W, C\), got shape \(8, 8, 8\)"),
        ((1, 4, 4, 8), {"heads": 3}, r"heads must divide the 8 channels, got 3"),
        ((1, 4, 4, 8), {"window": (0, 2)}, r"window must be two sizes >= 1, got \[0, 2\]"),
        ((1, 4, 4, 8), {"shift": (2, 0)}, r"shift must be in 0..window-1 .*got \[2, 0\]"),
        ((1, 4, 4, 8), {"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ((1, 4, 4, 4), {}, r"qkv_weight must be \(12, 4\) .*got \(24, 8\)"),
        ((1, 4, 4, 8), {"heads": 4}, r"position_bias must be \(4, 4, 4\), got \(2, 4, 4\)"),
    ],
)
def test_function_mistakes_are_one_line(shape, kwargs, message):
    settings = {"heads": 2, "window": (2, 2), "shift": (1, 1), **kwargs}
    with pytest.raises(ValueError, match=message):
        window_attention(torch.zeros(shape), QKV, None, PROJ, None, torch.zeros(2, 4, 4),
                         **settings)  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"version": 3}, r"version must be 1 or 2, got 3"),
        ({"heads": 3}, r"heads must divide dim=8, got 3"),
        ({"dropout": -0.1}, r"dropout must be in \[0, 1\), got -0.1"),
        ({"version": 2, "window": (1, 4)}, r"window must be at least 2 a side .*got \[1, 4\]"),
    ],
)
def test_module_mistakes_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WindowAttention(8, **{"heads": 2, "window": (2, 2), **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"heads": 3}, r"heads must divide dim=8, got 3"),
        ({"scale": 0.0}, r"scale must be > 0 \(or None: 1 / sqrt\(head size\)\), got 0.0"),
        ({"window": (0, 3)}, r"window must be two sizes >= 1, got \[0, 3\]"),
    ],
)
def test_group_attention_mistakes_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GroupAttention(8, **{"heads": 2, "window": (2, 2), **kwargs})
    with pytest.raises(ValueError, match=r"x must be \(N, G, T, C\), got shape \(4, 8\)"):
        GroupAttention(8, heads=2, window=(2, 2))(torch.zeros(4, 8))


def test_modules_describe_themselves_and_hold_torchvisions_weight_names():
    layer = WindowAttention(8, heads=2, window=(3, 4), shift=(1, 2), version=2)
    assert layer.extra_repr() == "heads=2, window=[3, 4], shift=[1, 2], version=2, dropout=0.0"
    theirs = ShiftedWindowAttentionV2(8, [3, 4], [1, 2], 2)
    buffers = {"relative_position_index", "relative_coords_table"}
    assert set(layer.state_dict()) == set(theirs.state_dict()) - buffers
    group = GroupAttention(8, heads=2, window=(3, 3), scale=0.25)
    assert group.extra_repr() == "heads=2, window=[3, 3], scale=0.25"
    maxvit = RelativePositionalMultiHeadAttention(8, 4, 9)
    assert set(group.state_dict()) == set(maxvit.state_dict()) - buffers
