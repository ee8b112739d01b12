import pytest
import torch

from grownet.layers import WidthDropout, kept_channels, width_dropout


@pytest.mark.parametrize(
    ("channels", "retain", "expected"),
    [
        (10, 0.3, 3),
        (10, 0.1 + 0.2, 3),  # 3.0000000000000004 before rounding
        (100, 0.07, 7),  # 7.000000000000001 before rounding
        (100, 0.29, 29),  # 28.999999999999996 before rounding
        (7, 0.5, 4),
        (64, 0.5, 32),
        (10, 1.0, 10),
        (3, 0.1, 1),
        (1, 0.01, 1),
    ],
)
def test_kept_channels(channels, retain, expected):
    assert kept_channels(channels, retain) == expected


@pytest.mark.parametrize(
    ("channels", "retain", "match"),
    [
        (10, 0.0, r"retain must be in \(0, 1\], got 0.0"),
        (10, 1.5, r"retain must be in \(0, 1\], got 1.5"),
        (0, 0.5, "channels must be >= 1, got 0"),
    ],
)
def test_kept_channels_rejects(channels, retain, match):
    with pytest.raises(ValueError, match=match):
        kept_channels(channels, retain)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(("shape", "retain", "kept"), [((2, 10, 3, 3), 0.3, 3), ((4, 5), 0.5, 3)])
def test_prefix_keeps_first_channels_without_rescale(shape, retain, kept, training):
    out = width_dropout(torch.ones(shape), retain, mode="prefix", training=training)
    assert torch.equal(out[:, :kept], torch.ones_like(out[:, :kept]))
    assert torch.equal(out[:, kept:], torch.zeros_like(out[:, kept:]))


@pytest.mark.parametrize(
    ("offset", "span", "retain", "zeroed"),
    [(0, 4, 0.5, [2, 3]), (2, 4, 0.5, [4, 5]), (3, 5, 0.4, [5, 6, 7]), (2, 4, 1.0, [])],
)
def test_a_spanned_prefix_thins_only_its_span(offset, span, retain, zeroed):
    """Behind a concat a group's channels sit among others: only they are thinned."""
    out = width_dropout(torch.ones(2, 8, 3), retain, mode="prefix", offset=offset, span=span)
    assert [c for c in range(8) if not out[:, c].any()] == zeroed
    assert out[:, [c for c in range(8) if c not in zeroed]].eq(1).all()
    layer = WidthDropout(retain=retain, mode="prefix", offset=offset, span=span)
    assert torch.equal(layer(torch.ones(2, 8, 3)), out)
    assert layer.extra_repr().endswith(f"offset={offset}, span={span}")


def test_random_drops_whole_channels_and_rescales():
    x = torch.ones(64, 256, 2, 2)
    out = width_dropout(x, 0.25, generator=torch.Generator().manual_seed(0))
    per_channel = out.amax(dim=(2, 3))
    assert torch.equal(out, per_channel[:, :, None, None].expand_as(out))
    assert set(per_channel.unique().tolist()) == {0.0, 4.0}
    assert (per_channel > 0).float().mean().item() == pytest.approx(0.25, abs=0.01)


def test_random_drops_single_units_of_2d_input():
    out = width_dropout(torch.ones(4, 50), 0.5, generator=torch.Generator().manual_seed(0))
    for row in out:
        assert set(row.unique().tolist()) == {0.0, 2.0}


def test_random_is_reproducible_with_generator():
    x = torch.randn(8, 16, 3, 3)
    first, second = (
        width_dropout(x, 0.5, generator=torch.Generator().manual_seed(5)) for _ in range(2)
    )
    assert torch.equal(first, second)


@pytest.mark.parametrize(("retain", "training"), [(0.5, False), (1.0, True)])
def test_random_is_identity_in_eval_or_at_full_width(retain, training):
    x = torch.randn(2, 4, 3, 3)
    assert width_dropout(x, retain, training=training) is x


@pytest.mark.parametrize(
    ("x", "kwargs", "match"),
    [
        (torch.ones(2, 4), {"retain": 0.0}, r"retain must be in \(0, 1\], got 0.0"),
        (torch.ones(2, 4), {"retain": 0.5, "mode": "suffix"}, "mode must be one of .*'suffix'"),
        (torch.ones(4), {"retain": 0.5}, r"shape \(N, C, ...\), got \(4,\)"),
        (torch.ones(2, 4), {"retain": 0.5, "mode": "prefix", "offset": 2, "span": 3},
         r"offset \+ span within the 4 channels, got mode='prefix', offset=2, span=3"),
        (torch.ones(2, 4), {"retain": 0.5, "offset": 0, "span": 2}, "a span needs mode 'prefix'"),
    ],
)
def test_width_dropout_rejects(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        width_dropout(x, **kwargs)


def test_module_retain_is_mutable_and_validated():
    layer = WidthDropout(retain=0.5, mode="prefix")
    layer.retain = 0.25
    assert torch.equal(layer(torch.ones(1, 4)), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"retain must be in \(0, 1\], got 0"):
        layer.retain = 0
    assert layer.retain == 0.25
    assert layer.extra_repr() == "retain=0.25, mode='prefix'"


def test_module_random_is_identity_in_eval():
    x = torch.randn(2, 4, 3, 3)
    assert WidthDropout(retain=0.5).eval()(x) is x


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"retain": 1.5}, "retain must be in"), ({"retain": 0.5, "mode": "block"}, "mode must be")],
)
def test_module_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WidthDropout(**kwargs)
