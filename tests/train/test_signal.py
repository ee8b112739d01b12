"""A layer's signal: how much its output still depends on the input, per layer of a pass."""

import itertools
import math

import pytest
import torch
from torch import nn

from grownet.train.signal import SignalProbe, in_order, input_signal


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        ([[1.0, 5.0], [3.0, 5.0]], 0.5),  # unit 0 spreads by 1, unit 1 is a constant
        ([[2.0, -2.0]], 0.0),  # one sample has no spread
        ([[7.0, 7.0], [7.0, 7.0]], 0.0),  # a bias alone carries nothing of the input
        ([[0.0], [2.0], [0.0], [2.0]], 1.0),
    ],
)
def test_input_signal(out, expected):
    assert input_signal(torch.tensor(out)) == pytest.approx(expected)


def test_input_signal_of_feature_maps_averages_every_unit():
    out = torch.zeros(2, 3, 4, 4)
    out[1, 0] = 2.0  # one channel of 3 differs between the samples, by 2 everywhere
    assert input_signal(out) == pytest.approx(1.0 / 3)


def test_a_batch_without_units_is_refused():
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        input_signal(torch.ones(5))


def test_the_probe_records_weight_layers_once_and_leaves_no_hooks():
    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3))
    with SignalProbe(net.named_children()) as probe:
        net(torch.randn(6, 3))
        first = dict(probe.signal)
        net(torch.zeros(6, 3))  # a second pass does not overwrite the first
    assert set(first) == {"0", "2"} and probe.signal == first
    assert all(not m._forward_hooks for m in net)


def test_in_order_follows_the_graph_and_rounds():
    assert in_order({"b": 1 / 3, "a": 2.0}, ["a", "c", "b"]) == {"a": 2.0, "b": 0.3333}


def stack(std: float | None, channels: int = 20, depth: int = 6) -> nn.Sequential:
    torch.manual_seed(0)
    layers = [nn.Conv2d(channels, channels, 3, padding=1) for _ in range(depth)]
    for conv in layers:
        nn.init.zeros_(conv.bias)
        if std is None:  # fan-in scaled (Caffe's xavier): unit gain without rectifiers
            nn.init.normal_(conv.weight, std=1 / math.sqrt(9 * channels))
        else:
            nn.init.normal_(conv.weight, std=std)
    return nn.Sequential(*layers)


def test_a_small_gaussian_filler_loses_the_signal_layer_by_layer():
    """Why the DropIn paper's LeNet(30) under a Gaussian std 0.01 answers the majority class:
    each un-rectified 3x3 convolution of 20 channels scales the signal by sqrt(9 * 20) * 0.01."""
    x = torch.randn(64, 20, 12, 12)
    for std, low, high in ((0.01, 0.10, 0.16), (None, 0.7, 1.1)):
        net = stack(std)
        with torch.no_grad(), SignalProbe(net.named_children()) as probe:
            net(x)
        values = list(probe.signal.values())
        ratios = [b / a for a, b in itertools.pairwise(values)]
        assert all(low < r < high for r in ratios), (std, ratios)
