"""Zoo graphs run in the executor: shapes, torchvision equivalence, DropIn at q = 1 = the
shallow net."""

import pytest
import torch
import torchvision
from torch import nn

from grownet.graph.executor import GraphNet, exclusive_branches
from grownet.graph.plan import Planner
from grownet.zoo import build

SMALL = [
    ("lenet2n", {"n": 3}, (1, 28, 28)),
    ("lenet2n", {"n": 2, "conv_relu": True}, (1, 28, 28)),
    ("cifar10_3layer", {}, (3, 32, 32)),
    ("cifar10_11layer", {"dropin_length": 100}, (3, 32, 32)),
    ("cifar_resnet", {"depth": 20}, (3, 32, 32)),
    ("cifar_resnet", {"depth": 20, "shortcut": "B", "zero_init_residual": True}, (3, 32, 32)),
    ("cifar_resnet", {"depth": 20, "shortcut": "conv1x1", "depth_dropout": 0.5}, (3, 32, 32)),
    (
        "cifar_resnet",
        {"depth": 20, "shortcut": "avgpool", "stochastic_depth": "linear"},
        (3, 32, 32),
    ),
]


@pytest.mark.parametrize(("name", "opts", "shape"), SMALL)
def test_small_nets_train_and_eval(name, opts, shape):
    torch.manual_seed(0)
    graph = build(name, **opts)
    net, planner = GraphNet(graph), Planner(graph, seed=0)
    x = torch.randn(2, *shape)
    out = net(x, planner.draw(50))  # DropIns half grown in, some residual branches dropped
    out.sum().backward()
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    net.eval()
    with torch.no_grad():
        assert net(x).shape == (2, 10)


def _load_torchvision(net: GraphNet, model: nn.Module) -> None:
    # Node ids are torchvision's module names with "_" for ".".
    state = {}
    for key, value in model.state_dict().items():
        module, _, tensor = key.rpartition(".")
        state[f"layers.{module.replace('.', '_')}.{tensor}"] = value
    net.load_state_dict(state, strict=True)


@pytest.mark.parametrize("depth", [18, 50])
def test_imagenet_resnet_equals_torchvision(depth):
    torch.manual_seed(0)
    model = getattr(torchvision.models, f"resnet{depth}")(weights=None).eval()
    for m in model.modules():  # non-trivial BN statistics, so the copy is really checked
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5), nn.init.uniform_(m.bias, -0.5, 0.5)
    net = GraphNet(build(f"resnet{depth}")).eval()
    _load_torchvision(net, model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x), rtol=1e-4, atol=1e-4)


def test_lenet2n_at_q1_is_lenet():
    torch.manual_seed(0)
    grown, plain = GraphNet(build("lenet2n", n=3)).eval(), GraphNet(build("lenet")).eval()
    planner = Planner(grown.graph)
    plan = planner.draw(0)  # iteration 0: q = 1, every DropIn passes its old input
    skipped = grown.skipped_nodes(plan)
    assert skipped == {"conv1_2", "conv1_3", "conv2_2", "conv2_3"}
    pairs = {"conv1": "conv1_1", "conv2": "conv2_1", "ip1": "fc3", "ip2": "fc4"}
    for mine, theirs in pairs.items():
        plain.layers[mine].load_state_dict(grown.layers[theirs].state_dict())
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(grown(x, plan), plain(x))
        assert not torch.allclose(grown(x, planner.draw(2500)), plain(x))  # fully grown


def test_vgg16_dropin_at_q1_skips_exactly_the_vgg8_extras():
    graph = build("vgg16_dropin")
    branches = exclusive_branches(graph)
    new_layers = set()
    for node in graph.nodes_of("dropin"):
        new_layers |= branches[(graph.inputs(node)[0], node)]
    vgg8 = {n for n in build("vgg16").nodes if n.startswith(("conv", "relu"))}
    vgg8 -= {n for n in build("vgg8").nodes}
    assert new_layers == vgg8
