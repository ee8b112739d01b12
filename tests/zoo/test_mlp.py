"""The mlp base: flat features or flattened images, linear (+ BN) + ReLU blocks, a classifier."""

import pytest
import torch

from grownet.graph.executor import GraphNet
from grownet.graph.plan import Planner
from grownet.zoo import build, mlp


@pytest.mark.parametrize(
    ("options", "nodes", "params"),
    [
        ({"in_shape": (13,), "num_classes": 3, "widths": [32, 16]},
         ["input", "fc1", "bn1", "relu1", "fc2", "bn2", "relu2", "out", "output"], 1075),
        ({"in_shape": "1x8x8", "widths": [20]},
         ["input", "flatten", "fc1", "bn1", "relu1", "out", "output"], 64 * 20 + 40 + 210),
        ({"in_shape": 4, "widths": [8], "batchnorm": False, "dropout": 0.5, "num_classes": 2},
         ["input", "fc1", "relu1", "drop1", "out", "output"], 4 * 8 + 8 + 18),
    ],
)  # fmt: skip
def test_structure_and_parameters(options, nodes, params):
    g = build("mlp", **options)
    assert list(g.nodes) == nodes
    assert g.num_params() == params
    assert g.shapes()["out"] == (options.get("num_classes", 10),)
    assert g.spec("fc1").params["bias"] == (not options.get("batchnorm", True))


def test_runs_on_features_and_on_images():
    torch.manual_seed(0)
    for shape in [(13,), (1, 8, 8)]:
        g = mlp(in_shape=shape, widths=(16,), num_classes=3)
        net = GraphNet(g)
        out = net(torch.randn(4, *shape), Planner(g).draw(0))
        out.sum().backward()
        assert out.shape == (4, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"widths": []}, "widths must be a non-empty list"),
        ({"widths": [8, 0]}, "each width must be an integer >= 1, got 0"),
        ({"in_shape": "8x8"}, r"in_shape must be \(features,\) or \(channels, height, width\)"),
        ({"dropout": 1.0}, "dropout must be a number in"),
    ],
)
def test_mistakes(options, match):
    with pytest.raises(ValueError, match=match):
        build("mlp", **options)


def test_the_trainer_shapes_it_for_a_table():
    from grownet.train.config import TrainConfig
    from grownet.train.network import build_graph

    g = build_graph(TrainConfig(model="mlp", dataset="wine"), (13,), 3)
    assert g.input_shape == (13,) and g.shapes()["out"] == (3,)
