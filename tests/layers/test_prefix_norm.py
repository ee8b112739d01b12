"""Norms over a prefix of their features: equal to the narrower norm, padded with zeros."""

import pytest
import torch
from torch import nn

from grownet.graph import GraphError, NetGraph
from grownet.graph.spec import LayerSpec
from grownet.layers.prefix_norm import PrefixLayerNorm, PrefixRMSNorm, features_on, prefix_norm

X = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    ("kwargs", "on"),
    [
        ({}, 8),
        ({"retain": 0.5}, 4),
        ({"retain": 0.3}, 3),  # kept_channels' rounding: ceil
        ({"old": 6, "q": 1.0}, 6),  # growing: every new feature still off
        ({"old": 6, "q": 0.5}, 7),  # one of two handed over (floor(q * 2) = 1 off)
        ({"old": 6, "q": 0.0}, 8),
        ({"retain": 0.5, "old": 6, "q": 0.0}, 4),  # a sweep of a grown norm: the smaller
    ],
)
def test_features_on_counts_as_width_dropout_and_width_dropin_do(kwargs, on):
    assert features_on(8, **kwargs) == on


@pytest.mark.parametrize("kind", ["layer", "rms"])
@pytest.mark.parametrize("on", [1, 3, 8])
def test_a_prefix_norm_is_the_narrower_norm_padded_with_zeros(kind, on):
    weight, bias = torch.randn(8), torch.randn(8)
    narrower = nn.LayerNorm(on) if kind == "layer" else nn.RMSNorm(on, eps=1e-6)
    with torch.no_grad():
        narrower.weight.copy_(weight[:on])
        if kind == "layer":
            narrower.bias.copy_(bias[:on])
    got = prefix_norm(X, weight, bias if kind == "layer" else None, on=on,
                      eps=narrower.eps, kind=kind)  # fmt: skip
    torch.testing.assert_close(got[..., :on], narrower(X[..., :on]))
    assert not got[..., on:].any()


@pytest.mark.parametrize("cls", [PrefixLayerNorm, PrefixRMSNorm])
def test_the_modules_keep_torchs_state_dict_and_change_their_prefix_between_steps(cls):
    norm = cls(8)
    plain = (nn.LayerNorm if cls is PrefixLayerNorm else nn.RMSNorm)(8)
    assert norm.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(norm.state_dict())
    torch.testing.assert_close(norm(X), plain(X))  # every feature: torch's norm
    norm.retain = 0.5
    assert not norm(X)[..., 4:].any() and norm(X)[..., :4].any()
    assert "retain=0.5" in repr(norm)


def test_a_growing_norm_holds_the_new_features_out_until_handed_over():
    norm = PrefixLayerNorm(8, old=6, length=10)
    assert norm.q == 1.0 and not norm(X)[..., 6:].any()
    norm.q = 0.0
    assert norm(X)[..., 6:].all()
    assert "old=6, length=10, start=0" in repr(norm)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: features_on(8, retain=0.0), r"retain must be in \(0, 1\], got 0.0"),
        (lambda: features_on(8, old=8), r"old must be in 0..7 \(0: not growing\), got 8"),
        (lambda: features_on(8, old=4, q=1.5), r"q must be in \[0, 1\], got 1.5"),
        (lambda: prefix_norm(X, None, None, on=9, eps=1e-5), r"on must be in 1..8, got 9"),
        (lambda: prefix_norm(X, None, None, on=2, eps=1e-5, kind="batch"), "kind must be one"),
        (lambda: PrefixLayerNorm(8, old=4), "a growing norm needs old >= 1, length >= 1"),
        (lambda: setattr(PrefixRMSNorm(8), "retain", 2), r"retain must be in \(0, 1\], got 2"),
    ],
)
def test_mistakes_are_one_line(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"retain": 1.5}, r"norm retain must be in \(0, 1\] \(the share of .*, got 1.5"),
        ({"old": 8, "length": 10}, r"a growing norm needs old in 1..7 .* got old=8, length=10"),
        ({"old": 4}, r"a growing norm needs old in 1..7 .* got old=4, length=0, start=0"),
    ],
)
@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_a_graphs_norm_settings_are_checked_with_its_shapes(op, params, message):
    g = NetGraph()
    g.chain(g.add("input", LayerSpec("input", shape=[5, 8])),
            [("norm", LayerSpec(op, **params)), ("output", LayerSpec("output"))])  # fmt: skip
    with pytest.raises(GraphError, match=message):
        g.validate()


def test_a_growing_norm_in_a_graph_normalises_its_handed_over_prefix():
    """The executor hands a growing norm its q as it does a width DropIn's, but never folds
    it into the next layer's weight as it folds a width DropIn (a norm is not a mask)."""
    from grownet.graph.executor import GraphNet
    from grownet.graph.plan import StepPlan

    g = NetGraph()
    layers = [("ln", LayerSpec("layer_norm", old=6, length=10)),
              ("fc", LayerSpec("linear", out_features=3)), ("output", LayerSpec("output"))]
    g.chain(g.add("input", LayerSpec("input", shape=[5, 8])), layers)
    net = GraphNet(g).eval()
    for iteration, on in [(0, 6), (5, 7), (10, 8)]:
        ln = net.layers["ln"]
        want = net.layers["fc"](prefix_norm(X, ln.weight, ln.bias, on=on, eps=ln.eps))
        torch.testing.assert_close(net(X, StepPlan(iteration=iteration)), want)
