"""Importing nn.Modules with torch.fx: the graph computes what the module does, weights and all,
in train and eval mode; anything the op table cannot express is one line naming each call."""

import copy
import doctest
import sys

import pytest
import torch
import torchvision
from torch import nn

from grownet.cli import main
from grownet.graph import GraphError, NetGraph, import_command
from grownet.graph import fx_import as fx_import_module
from grownet.graph.executor import GraphNet
from grownet.graph.fx_import import build_imported, import_callable, import_module


class SmallCNN(nn.Module):
    """A user's network written with functional calls, a concat, a view and an in-place add."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(3, 8, 5, padding="same", bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.c = nn.Conv2d(16, 16, 3, padding=1)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(16 * 4 * 4, num_classes)

    def forward(self, x):
        y = torch.cat([self.a(x), torch.relu(self.b(x))], dim=1)
        y = nn.functional.relu(self.bn(y))
        z = self.c(y)
        z += y
        z = nn.functional.max_pool2d(z, 2)
        z = nn.functional.adaptive_avg_pool2d(torch.sigmoid(z), (4, 4))
        return self.fc(self.drop(z.view(z.size(0), -1)))


def mlp(num_classes: int = 3) -> nn.Module:
    return nn.Sequential(
        nn.Linear(13, 32), nn.BatchNorm1d(32), nn.GELU(), nn.Dropout(0.2),
        nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, num_classes),
    )  # fmt: skip


MODELS = {
    "resnet18": (lambda: torchvision.models.resnet18(num_classes=10), (3, 32, 32)),
    "resnet50": (lambda: torchvision.models.resnet50(num_classes=10), (3, 32, 32)),
    "vgg11": (lambda: torchvision.models.vgg11(num_classes=10), (3, 32, 32)),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(num_classes=10), (3, 32, 32)),
    "small_cnn": (SmallCNN, (3, 16, 16)),
    "mlp": (mlp, (13,)),
}


def imported(name):
    torch.manual_seed(0)
    make, shape = MODELS[name]
    module = make()
    graph, state = import_module(module, shape)
    net = GraphNet(graph)
    net.load_state_dict(state)
    return module, net, shape


@pytest.mark.parametrize("name", list(MODELS))
def test_imported_graph_computes_what_the_module_does(name):
    module, net, shape = imported(name)
    x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), module.eval()(x), rtol=1e-4, atol=1e-5)
    module.train(), net.train()
    # train mode: batchnorms use the batch's statistics and update their running ones; dropout
    # draws its masks in the same order from the same seed
    torch.manual_seed(2)
    want = module(x)
    torch.manual_seed(2)
    got = net(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    stats = {k: v for k, v in module.state_dict().items() if "running" in k}
    ours = {k.split(".", 1)[1]: v for k, v in net.state_dict().items() if "running" in k}
    assert len(stats) == len(ours)
    node_of = {n.target: n.name for n in torch.fx.symbolic_trace(module).graph.nodes}
    for key, value in stats.items():  # node ids are fx's names for the module paths
        path, _, tensor = key.rpartition(".")
        torch.testing.assert_close(ours[f"{node_of[path]}.{tensor}"], value)


def test_node_ids_follow_module_paths_and_weights_are_copied():
    module, net, _ = imported("resnet18")
    assert "layer1_0_conv1" in net.graph and len(net.graph.nodes_of("add")) == 8
    shortcut = module.layer2[0].downsample[0].weight
    assert torch.equal(net.layers["layer2_0_downsample_0"].weight, shortcut)
    assert net.graph.num_params() == sum(p.numel() for p in module.parameters())


class Unsupported(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding_mode="reflect", padding=1)
        self.inner = nn.Sequential(nn.LayerNorm([4, 8, 8]))
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, x):
        x = self.inner(self.conv(x)) * 2
        return self.up(torch.softmax(x, dim=1))


class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(self.conv(x)).mean(dim=(2, 3))


class Branchy(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x


@pytest.mark.parametrize(
    ("module", "shape", "names"),
    [
        (
            Unsupported(),
            (3, 8, 8),
            [
                "1 Conv2d (padding_mode='reflect') [conv]",
                "1 LayerNorm (normalized over 3 dims) [inner.0]",
                "1 mul (a constant operand) [mul]",
                "1 softmax [softmax]",
                "1 Upsample [up]",
            ],
        ),
        (Shared(), (3, 8, 8), ["1 call", "1 Conv2d (called a second time: shared weights)"]),
        (nn.Sequential(nn.Conv2d(3, 4, 3, dilation=(1, 2))), (3, 8, 8), ["dilation=(1, 2)"]),
        (nn.Sequential(nn.BatchNorm2d(3, affine=False)), (3, 8, 8), ["1 BatchNorm2d (affine"]),
        (Branchy(), (3, 8, 8), ["torch.fx cannot trace Branchy"]),
    ],
)
def test_unsupported_calls_are_one_line_naming_each(module, shape, names):
    with pytest.raises(GraphError) as err:
        import_module(module, shape)
    text = str(err.value)
    assert "\n" not in text
    for name in names:
        assert name in text
    if names[0].startswith("conv (Conv2d, padding"):
        assert text.startswith("cannot import Unsupported: 5 calls that grownet graphs cannot")


def test_a_wrong_input_shape_is_one_line():
    message = r"cannot import Sequential with input shape \(3, 8, 8\): the module fails on it"
    with pytest.raises(GraphError, match=message):
        import_module(nn.Sequential(nn.Flatten(), nn.Linear(10, 2)), (3, 8, 8))


# --------------------------------------------------------------------------- references / CLI


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "mynets.py").write_text(
        "from torch import nn\n"
        "def small(num_classes=10):\n"
        "    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(),"
        " nn.Linear(4 * 6 * 6, num_classes))\n"
        "def fixed():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 7))\n"
        "def softmaxed():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Softmax(dim=1))\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("mynets", None)


def test_build_imported_shapes_the_network_for_the_data(user_module):
    graph = build_imported("import:mynets:small", (1, 8, 8), 5)
    assert graph.shapes()["output"] == (5,)
    with pytest.raises(
        GraphError, match=r"mynets:fixed: the network gives outputs of shape \(7,\)"
    ):
        build_imported("import:mynets:fixed", (1, 8, 8), 5)
    graph, _ = import_callable(str(user_module / "mynets.py") + ":fixed", (1, 8, 8))
    assert graph.shapes()["output"] == (7,)


def test_grownet_import_writes_graph_and_weights(user_module, capsys):
    parser_args = ["mynets:small", "--input-shape", "1,8,8", "--num-classes", "3", "-o", "g.json"]
    assert _cli(parser_args) == 0
    graph = NetGraph.from_json(user_module / "g.json")
    state = torch.load(user_module / "g.pt", weights_only=True)
    net = GraphNet(graph)
    net.load_state_dict(state)
    assert "imported mynets:small" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["mynets:softmaxed", "-o", "s.json"],
            "1 call that grownet graphs cannot express: 1 Softmax [1]",
        ),
        (["nosuch:net", "-o", "s.json"], "no module named 'nosuch'"),
        (["mynets:nosuch", "-o", "s.json"], "module mynets has no callable 'nosuch'"),
        (["mynets:fixed", "--num-classes", "3", "-o", "s.json"], "takes no num_classes"),
        (["mynets:small", "--input-shape", "1,x", "-o", "s.json"], "--input-shape '1,x'"),
        (["mynets:small", "-o", "s.txt"], "ending in .json"),
    ],
)
def test_grownet_import_mistakes_are_one_line_and_write_nothing(user_module, capsys, argv, message):
    assert _cli(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(user_module.glob("s.*"))


def _cli(argv):
    """``grownet import`` through the real main(), registered the way cli.py will."""
    import grownet.cli as cli

    real = cli.build_parser

    def with_import():
        parser = real()
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        if "import" not in sub.choices:
            import_command.register(sub)
        return parser

    cli.build_parser = with_import
    try:
        return main(["import", *argv])
    finally:
        cli.build_parser = real


@pytest.mark.parametrize("module", [fx_import_module, import_command])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_importing_leaves_the_module_as_it_was():
    module = SmallCNN().train()
    before = copy.deepcopy(module.state_dict())
    import_module(module, (3, 16, 16))
    assert module.training
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


class _UserTransformer(torch.nn.Module):
    """A user's small transformer: PyTorch's encoder layer between a projection and a pool."""

    def __init__(self, norm_first: bool, activation: str, dropout: float) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(8, 16)
        self.layer = torch.nn.TransformerEncoderLayer(
            16, 2, 32, dropout=dropout, activation=activation, batch_first=True,
            norm_first=norm_first,
        )  # fmt: skip
        self.head = torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.layer(self.embed(x)).mean(1))


@pytest.mark.parametrize(("norm_first", "activation"), [(True, "gelu"), (False, "relu")])
def test_a_users_transformer_is_imported_whole(norm_first, activation):
    torch.manual_seed(0)
    module = _UserTransformer(norm_first, activation, dropout=0.0)
    graph, state = import_module(module, (5, 8))  # compares the outputs in eval mode
    assert {"layer_attn", "layer_add1", "layer_add2"} <= set(graph.nodes)
    net = GraphNet.with_state(graph, state).train()
    x = torch.randn(4, 5, 8)
    torch.testing.assert_close(net(x), module.train()(x), rtol=1e-5, atol=1e-5)


def test_a_masked_encoder_layer_call_is_refused_in_one_line():
    class Masked(_UserTransformer):
        def forward(self, x):
            return self.layer(self.embed(x), is_causal=True, src_mask=torch.ones(5, 5).bool())

    with pytest.raises(GraphError, match=r"TransformerEncoderLayer .*a mask or other arguments"):
        import_module(Masked(True, "gelu", 0.0), (5, 8))
