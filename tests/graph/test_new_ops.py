"""The ops imported networks need, each against the PyTorch code it stands for: the module's
output, the inferred shape, and a refusal naming the value given."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.swin_transformer import _patch_merging_pad

from grownet.graph import GraphError, LayerSpec
from grownet.graph.ops import OPS
from grownet.layers import GatedAdd
from grownet.layers.attention import SelfAttention
from grownet.layers.window import GroupAttention, WindowAttention

X = torch.randn(2, 8, 4, 6, generator=torch.Generator().manual_seed(0))
G = torch.rand(2, 8, 1, 1, generator=torch.Generator().manual_seed(1))
T = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(2))

# op, params, inputs, what PyTorch computes
CASES = {
    "mul": ("mul", {}, [G, X], lambda: G * X),
    "permute": ("permute", {"dims": [1, 2, 0]}, [X], lambda: X.permute(0, 2, 3, 1)),
    "reshape": ("reshape", {"shape": [8, 24]}, [X], lambda: X.view(2, 8, 24)),
    "chunk_1": ("slice", {"dim": 0, "start": 4, "stop": 8}, [X], lambda: X.chunk(2, dim=1)[1]),
    "split": ("slice", {"dim": 2, "start": 0, "stop": 2}, [X], lambda: X.split(2, dim=3)[0]),
    "class_token": ("select", {"dim": 0, "index": 0}, [T], lambda: T[:, 0]),
    "channel_shuffle": ("channel_shuffle", {"groups": 2}, [X], lambda: nn.ChannelShuffle(2)(X)),
    "concat_one": ("concat", {}, [X], lambda: torch.cat([X], dim=1)),
    "layer_norm": ("layer_norm", {"eps": 1e-6}, [T], lambda: F.layer_norm(T, (8,), eps=1e-6)),
    "layer_scale": ("param", {"shape": [8, 1, 1], "mode": "mul", "value": 0.5}, [X],
                    lambda: X * torch.full((8, 1, 1), 0.5)),
    "position": ("param", {"shape": [5, 8], "mode": "add", "value": 1.0}, [T], lambda: T + 1),
    "token": ("param", {"shape": [1, 8], "mode": "prepend"}, [T],
              lambda: torch.cat([torch.zeros(2, 1, 8), T], dim=1)),
    "linear_tokens": ("linear", {"out_features": 3}, [T], None),
    "rms_norm": ("rms_norm", {"eps": 1e-6}, [T], lambda: F.rms_norm(T, (8,), eps=1e-6)),
    "token_mean": ("mean", {"dims": [0]}, [T], lambda: T.mean(1)),
    "mean_keepdim": ("mean", {"dims": [1, 2], "keepdim": True}, [X],
                     lambda: X.mean((2, 3), keepdim=True)),
    # X as a channels-last (H, W, C) map, and with odd sides
    "patch_merge": ("patch_merge", {}, [X], lambda: _patch_merging_pad(X)),
    "patch_merge_odd": ("patch_merge", {}, [X[:, :7, :3]],
                        lambda: _patch_merging_pad(X[:, :7, :3])),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_each_op_computes_what_pytorch_does_and_infers_its_shape(name):
    op, params, xs, want = CASES[name]
    spec = LayerSpec(op, **params)
    shapes = [tuple(x.shape[1:]) for x in xs]
    module = OPS[op].build(spec.params, shapes)
    got = module(*xs)
    if want is None:  # a layer with weights: PyTorch's own module, on the last dimension
        want = lambda: F.linear(T, module.weight, module.bias)  # noqa: E731
    torch.testing.assert_close(got, want(), rtol=0, atol=1e-6)
    assert OPS[op].infer(spec.params, shapes) == tuple(got.shape[1:])
    assert OPS[op].count_params(spec.params, shapes, tuple(got.shape[1:])) == sum(
        p.numel() for p in module.parameters()
    )


def test_attention_computes_what_multihead_attention_does():
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    ours = SelfAttention(8, heads=2)
    ours.load_state_dict(reference.state_dict())
    want = reference(T, T, T, need_weights=False)[0]
    torch.testing.assert_close(ours.eval()(T), want, rtol=1e-5, atol=1e-6)
    spec = LayerSpec("attention", heads=2)
    assert OPS["attention"].infer(spec.params, [(5, 8)]) == (5, 8)
    assert OPS["attention"].count_params(spec.params, [(5, 8)], (5, 8)) == sum(
        p.numel() for p in ours.parameters()
    )


def test_causal_attention_computes_what_a_masked_multihead_attention_does():
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    ours = SelfAttention(8, heads=2, causal=True)
    ours.load_state_dict(reference.state_dict())
    mask = nn.Transformer.generate_square_subsequent_mask(5)
    want = reference(T, T, T, attn_mask=mask, need_weights=False)[0]
    torch.testing.assert_close(ours.eval()(T), want, rtol=1e-5, atol=1e-6)
    # the first token sees only itself: changing a later token leaves its output alone
    later = T.clone()
    later[:, 1:] += 1
    torch.testing.assert_close(ours(later)[:, 0], ours(T)[:, 0])


def test_embedding_looks_tokens_up_and_a_tied_head_shares_its_table():
    from grownet.graph import GraphNet, NetGraph

    g = NetGraph()
    g.add("input", LayerSpec("input", shape=[5]))
    g.add("tok", LayerSpec("embedding", num_embeddings=7, out_features=4), ["input"])
    g.add("head", LayerSpec("linear", out_features=7, bias=False, tie="tok"), ["tok"])
    g.add("output", LayerSpec("output"), ["head"])
    net = GraphNet(g)
    ids = torch.tensor([[0, 3, 6, 3, 1]])
    table = net.layers["tok"].weight
    torch.testing.assert_close(net(ids), table[ids] @ table.T)
    assert net.layers["head"].weight is table
    assert g.num_params() == sum(p.numel() for p in net.parameters()) == 28
    # loaded from a state dict (each key its own tensor), the two are one again
    again = GraphNet.with_state(g, {k: v.clone() for k, v in net.state_dict().items()})
    assert again.layers["head"].weight is again.layers["tok"].weight


@pytest.mark.parametrize(
    ("tie", "out", "message"),
    [
        ("nowhere", 7, r"tie must name an embedding node, got 'nowhere'"),
        ("input", 7, r"tie must name an embedding node, got 'input'"),
        ("tok", 6, r"its weight \(6, 4\) cannot be embedding 'tok''s table \(7, 4\)"),
    ],
)
def test_a_tie_to_anything_but_a_fitting_embedding_is_refused(tie, out, message):
    from grownet.graph import NetGraph

    g = NetGraph()
    g.add("input", LayerSpec("input", shape=[5]))
    g.add("tok", LayerSpec("embedding", num_embeddings=7, out_features=4), ["input"])
    g.add("head", LayerSpec("linear", out_features=out, bias=False, tie=tie), ["tok"])
    g.add("output", LayerSpec("output"), ["head"])
    with pytest.raises(GraphError, match=message):
        g.validate()


def test_drop_path_scales_a_kept_branch_in_training_and_adds_it_as_is_in_eval():
    add = GatedAdd(kind="drop_path", drop_prob=0.25)
    branch, shortcut = torch.ones(2), torch.zeros(2)
    torch.testing.assert_close(add(branch, shortcut), torch.full((2,), 4 / 3))
    torch.testing.assert_close(add(None, shortcut, open=False), shortcut)
    torch.testing.assert_close(add.eval()(branch, shortcut), branch)


@pytest.mark.parametrize(
    ("op", "params", "shape", "message"),
    [
        ("permute", {"dims": [0, 0, 1]}, (8, 4, 6), r"dims must order 0\.\.2.*got \[0, 0, 1\]"),
        ("reshape", {"shape": [5, 5]}, (8, 4, 6), r"cannot reshape samples of shape \(8, 4, 6\)"),
        ("slice", {"dim": 0, "start": 4, "stop": 9}, (8, 4, 6), r"stop <= 8 .*got start=4"),
        ("slice", {"dim": 3, "start": 0, "stop": 1}, (8, 4, 6), r"dim must be in -3\.\.2"),
        ("select", {"dim": 0, "index": 5}, (5, 8), r"index must be in 0\.\.4 .*got 5"),
        ("channel_shuffle", {"groups": 3}, (8, 4, 6), r"groups must divide the 8 .*got 3"),
        ("mul", {}, None, r"mul inputs must have one rank"),
        ("param", {"shape": [8, 2], "mode": "add"}, (5, 8), r"weight \(8, 2\) must broadcast"),
        ("attention", {"heads": 3}, (5, 8), r"by heads=3 \(or head_dim set\), got \(5, 8\)"),
        ("attention", {"heads": 2, "keep_heads": 3}, (5, 8), r"keep_heads must be in 0..heads=2"),
        ("attention", {"heads": 2, "head_dim": -1}, (5, 8), r"head_dim must be an integer >= 0"),
        ("window_attention", {"heads": 4, "window": 2}, (4, 4, 6),
         r"channels-last map \(H, W, C\) with C divisible by heads=4, got \(4, 4, 6\)"),
        ("window_attention", {"heads": 2, "window": 2}, (5, 8),
         r"channels-last map .*got \(5, 8\)"),
        ("window_attention", {"heads": 2, "window": [2, 4], "shift": 2}, (4, 4, 6),
         r"shift must be below window=\[2, 4\] on each axis, got 2"),
        ("window_attention", {"heads": 2, "window": 4, "version": 3}, (4, 4, 6),
         r"version must be 1, or 2 with a window of at least 2 a side, got version=3"),
        ("window_attention", {"heads": 2, "window": [1, 4], "version": 2}, (4, 4, 6),
         r"got version=2, window=\[1, 4\]"),
        ("window_attention", {"heads": 2, "window": 0}, (4, 4, 6),
         r"window must be an integer >= 1 or a pair \[h, w\] of them, got 0"),
        ("window_attention", {"heads": 2, "window": 2, "shift": -1}, (4, 4, 6),
         r"shift must be an integer >= 0 or a pair \[h, w\] of them, got -1"),
        ("patch_merge", {}, (5, 8), r"x must be \(N, H, W, C\), got shape \(1, 5, 8\)"),
        ("group_attention", {"heads": 2, "window": 2}, (3, 9, 8),
         r"tokens \(G, 4, C\) for window=2, with C divisible by heads=2, got \(3, 9, 8\)"),
        ("group_attention", {"heads": 2, "window": 2, "scale": 0}, (3, 4, 8),
         r"op 'group_attention': scale must be a number > 0, got 0"),
    ],
)  # fmt: skip
def test_bad_parameters_are_refused_saying_what_was_given(op, params, shape, message):
    shapes = [(8, 1), (8, 4, 6)] if shape is None else [shape]
    with pytest.raises(GraphError, match=message):
        OPS[op].infer(LayerSpec(op, **params).params, shapes)


def test_parameter_types_are_checked_when_a_spec_is_made():
    with pytest.raises(GraphError, match=r"op 'param': mode must be a string, got 3"):
        LayerSpec("param", shape=[1], mode=3)
    with pytest.raises(GraphError, match=r"op 'attention': heads must be an integer >= 1, got 0"):
        LayerSpec("attention", heads=0)


@pytest.mark.parametrize(
    ("params", "shape"),
    [({"heads": 2, "window": 4, "shift": 2}, (9, 5, 8)),
     ({"heads": 2, "window": [4, 2], "version": 2, "bias": False}, (6, 6, 8))],
)  # fmt: skip
def test_window_attention_builds_what_it_counts(params, shape):
    spec = LayerSpec("window_attention", **params)
    module = OPS["window_attention"].build(spec.params, [shape])
    assert isinstance(module, WindowAttention)
    assert module(torch.randn(2, *shape)).shape == (2, *shape)
    assert OPS["window_attention"].infer(spec.params, [shape]) == shape
    assert OPS["window_attention"].count_params(spec.params, [shape], shape) == sum(
        p.numel() for p in module.parameters()
    )


def test_group_attention_builds_what_it_counts():
    spec, shape = LayerSpec("group_attention", heads=2, window=[2, 3], scale=0.1), (5, 6, 8)
    module = OPS["group_attention"].build(spec.params, [shape])
    assert isinstance(module, GroupAttention) and module.scale == 0.1
    assert module(torch.randn(2, *shape)).shape == (2, *shape)
    assert OPS["group_attention"].count_params(spec.params, [shape], shape) == sum(
        p.numel() for p in module.parameters()
    )
