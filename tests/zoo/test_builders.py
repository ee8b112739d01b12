"""Every zoo network: validates, has the right output, survives JSON, has the exact parameters."""

import time

import pytest
import torch
import torchvision

from grownet.graph import NetGraph
from grownet.zoo import MODELS, build

# (model, options, parameters). Sources: Caffe LeNet 431,080; He et al. CIFAR ResNets (0.27M,
# 0.46M, 0.66M, 0.85M, 1.7M, 19.4M; option A, computed exactly); option B ResNet-110 is the
# 1,730,714 reported e.g. by MemCNN; AlexNet 60,965,224 (bvlc_alexnet); the rest as derived in
# the builders' docstrings.
PARAMS = [
    ("lenet", {}, 431_080),
    ("lenet2n", {"n": 1}, 431_080),
    ("lenet2n", {"n": 5}, 431_080 + 4 * 26_170),
    ("lenet2n", {"n": 15, "dropin": False}, 431_080 + 14 * 26_170),
    ("cifar10_3layer", {}, 56_810),
    ("cifar10_11layer", {}, 415_466),
    ("cifar10_11layer", {"block_pools": True}, 261_866),
    ("alexnet", {}, 60_965_224),
    ("alexnet", {"variant": "caffenet", "fc7_regularizer": "dropin"}, 60_965_224),
    ("alexnet", {"groups": False}, 62_378_344),
    ("alexnet13", {}, 65_186_504),
    ("vgg8", {}, 127_553_640),
    ("vgg16_dropin", {}, 138_357_544),
    ("resnet20", {}, 269_722),
    ("resnet32", {}, 464_154),
    ("resnet44", {}, 658_586),
    ("resnet56", {}, 853_018),
    ("resnet56", {"shortcut": "B"}, 853_018 + 2_752),
    ("resnet110", {}, 1_727_962),
    ("resnet110", {"shortcut": "B"}, 1_730_714),
    ("resnet56", {"shortcut": "conv1x1", "depth_dropout": 0.5}, 853_018 + 47_840),
    ("resnet1202", {"stochastic_depth": "linear", "shortcut": "avgpool"}, 19_421_274),
]


@pytest.mark.parametrize(("name", "opts", "params"), PARAMS)
def test_graph_validates_round_trips_and_counts(name, opts, params):
    g = build(name, **opts)
    shapes = g.validate()
    classes = 1000 if name.startswith(("alexnet", "vgg")) else 10
    assert shapes[g.output_node] == (classes,)
    assert NetGraph.from_json(g.to_json()) == g
    assert g.num_params() == params


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_builds_with_its_defaults(name):
    opts = {"lenet2n": {"n": 2}, "vgg": {"depth": 11}}.get(name, {})
    opts |= {"depth": 20} if name == "cifar_resnet" else {}
    opts |= {"depth": 18} if name == "imagenet_resnet" else {}
    g = build(name, **opts)
    assert g.validate()[g.output_node][-1] in (10, 65, 1000)
    assert NetGraph.from_json(g.to_json()) == g
    assert (MODELS[name].__doc__ or "").strip()


def _torchvision_params(name: str, **kwargs) -> int:
    with torch.device("meta"):  # no memory, no init: counting is instant
        model = getattr(torchvision.models, name)(weights=None, **kwargs)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "opts", "tv_name"),
    [
        ("resnet18", {}, "resnet18"),
        ("resnet34", {}, "resnet34"),
        ("resnet50", {}, "resnet50"),
        ("resnet101", {}, "resnet101"),
        ("resnet152", {}, "resnet152"),
        ("vgg11", {}, "vgg11"),
        ("vgg16", {}, "vgg16"),
        ("vgg19", {}, "vgg19"),
        ("vgg13", {"batchnorm": True}, "vgg13_bn"),
        ("vgg16", {"batchnorm": True}, "vgg16_bn"),
        ("resnet50", {"num_classes": 10}, "resnet50"),
    ],
)
def test_params_equal_torchvision(name, opts, tv_name):
    extra = {"num_classes": opts["num_classes"]} if "num_classes" in opts else {}
    assert build(name, **opts).num_params() == _torchvision_params(tv_name, **extra)


@pytest.mark.parametrize(
    ("name", "gmacs"),
    [
        ("resnet18", 1.82),
        ("resnet34", 3.67),
        ("resnet50", 4.1),
        ("resnet152", 11.5),
        ("vgg16", 15.5),
        ("alexnet", 0.72),
        ("resnet56", 0.125),
        ("resnet110", 0.253),
    ],
)
def test_macs_match_published_figures(name, gmacs):
    assert build(name).macs() / 1e9 == pytest.approx(gmacs, rel=0.02)


def test_resnet1202_builds_fast():
    start = time.perf_counter()
    g = build("cifar_resnet", depth=1202, depth_dropout=0.5)
    g.validate()
    assert time.perf_counter() - start < 3.0
    assert len(g.nodes_of("gated_add")) == 600
