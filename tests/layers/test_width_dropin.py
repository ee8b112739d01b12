"""A width DropIn applied to its reader's weight computes what it computes on activations."""

import pytest
import torch
from torch import nn

from grownet.layers.width_dropin import WidthDropIn, width_dropin, width_dropin_weight

READERS = {
    "conv": lambda: nn.Conv2d(6, 5, 3, padding=1),
    "linear": lambda: nn.Linear(6, 5),
}
SHAPES = {"conv": (4, 6, 5, 5), "linear": (4, 6)}


def reads(reader, weight, x):
    if isinstance(reader, nn.Linear):
        return nn.functional.linear(x, weight, reader.bias)
    return reader._conv_forward(x, weight, reader.bias)


@pytest.mark.parametrize("kind", list(READERS))
@pytest.mark.parametrize("q", [1.0, 0.75, 0.5, 0.25, 0.0])
@pytest.mark.parametrize("sources", [None, [0, 2, 0]], ids=["zero", "net2net"])
def test_weight_side_equals_activation_side(kind, q, sources):
    torch.manual_seed(0)
    reader = READERS[kind]()
    x1 = torch.randn(SHAPES[kind], requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    out1 = reader(width_dropin(x1, old=3, q=q, sources=sources))
    grads1 = torch.autograd.grad(out1.square().sum(), [x1, reader.weight])
    weight = width_dropin_weight(reader.weight, old=3, q=q, sources=sources)
    out2 = reads(reader, weight, x2)
    grads2 = torch.autograd.grad(out2.square().sum(), [x2, reader.weight])
    torch.testing.assert_close(out2, out1)
    for a, b in zip(grads2, grads1, strict=True):
        torch.testing.assert_close(a, b)
    off = int(q * 3 + 1e-9)
    if off:  # units still off get no gradient from this reader
        assert not grads2[0][:, 6 - off :].any()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"old": 3, "q": 1.5}, "q must be in"),
        ({"old": 6, "q": 0.5}, "old must be in 1..5"),
        ({"old": 3, "q": 0.5, "sources": [0, 1]}, "one old unit per new unit"),
        ({"old": 3, "q": 0.5, "sources": [0, 1, 3]}, "old units in 0..2"),
    ],
)
def test_weight_side_checks(kwargs, match):
    with pytest.raises(ValueError, match=match):
        width_dropin_weight(torch.ones(5, 6), **kwargs)


@pytest.mark.parametrize(
    ("q", "sources", "expected"),
    [
        (1.0, None, [1, 2, 3, 0, 0, 6]),  # channels 2..4 are the layer's: 1 old, 2 new, off
        (0.5, None, [1, 2, 3, 4, 0, 6]),
        (0.0, None, [1, 2, 3, 4, 5, 6]),
        (1.0, [0, 0], [1, 2, 3, 3, 3, 6]),  # a split's stand-in: its source within the span
    ],
)
def test_a_spanned_width_dropin_mixes_only_its_span(q, sources, expected):
    """Behind a concat (DenseNet) a layer's channels sit among others at an offset."""
    x = torch.arange(1.0, 7.0).view(1, 6)
    got = width_dropin(x, old=1, q=q, sources=sources, offset=2, span=3)
    assert got.tolist() == [expected]
    layer = WidthDropIn(old=1, length=4, sources=sources, offset=2, span=3)
    layer.q = q
    assert torch.equal(layer(x), got) and "offset=2, span=3" in repr(layer)
    with pytest.raises(ValueError, match="offset \\+ span must be within the 6 channels"):
        width_dropin(x, old=1, q=q, offset=5, span=3)
