"""Export: the standalone module, the torch.export program and ONNX compute what grownet's
executor computes (eval mode; train mode too where the two modes differ only by BatchNorm);
load_model reads every kind of run; every mistake is one line, exit 2, nothing written."""

import ast
import hashlib
import importlib.util
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torchvision

from grownet.cli import main
from grownet.graph import GraphError, LayerSpec, NetGraph, export
from grownet.graph.coupling import group_of, with_group_dropout
from grownet.graph.executor import GraphNet
from grownet.graph.export import example_batch as example_input
from grownet.graph.export import export_model, load_model
from grownet.graph.fx_import import import_module
from grownet.graph.heads import narrow_heads
from grownet.graph.plan import StepPlan
from grownet.graph.standalone import standalone_source
from grownet.graph.widen import widen_gradually
from grownet.search.grow import Growth, collapse_all, grow_stage
from grownet.search.runs import state_for
from grownet.train.config import TrainConfig
from grownet.train.trainer import Trainer
from grownet.zoo import build

ATOL = 1e-5


def randomized(net: GraphNet, seed: int = 0) -> GraphNet:
    """``net`` with BatchNorm affine weights and running statistics away from their initial
    1/0, so a mix-up of BN tensors in the export shows in the outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in net.state_dict().items():
            node = name.split(".")[1]
            if net.graph.op(node) != "batchnorm" or not value.is_floating_point():
                continue
            if name.endswith(("weight", "running_var")):
                value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
            else:
                value.copy_(torch.randn(value.shape, generator=generator) * 0.2)
    return net


def sink() -> NetGraph:
    """Every op the zoo's models leave out, in one small graph."""
    g = NetGraph()

    def add(node, op, inputs, **params):
        return g.add(node, LayerSpec(op, **params), inputs)

    add("input", "input", [], shape=[3, 12, 12])
    add("c1", "conv", ["input"], out_channels=8, kernel_size=3, padding=1)
    add("lrn_a", "lrn", ["c1"], size=3, region="across")
    add("lrn_w", "lrn", ["c1"], size=3, alpha=0.01, region="within")
    add("cat", "concat", ["lrn_a", "lrn_w"])
    add("gelu", "activation", ["cat"], kind="gelu")
    add("prefix", "width_dropout", ["gelu"], retain=0.5, mode="prefix")
    add("bn", "batchnorm", ["prefix"])
    add("pad", "channel_pad", ["bn"], channels=20)
    add("crop", "resize", ["pad"], shape=[24, 6, 6], method="crop")
    add("area", "resize", ["pad"], shape=[24, 6, 6], method="interpolate", seed=3)
    add("reg", "dropin", ["crop", "area"], mode="regularizing", p=0.3, mxscale=2.0)
    add("c2", "conv", ["reg"], out_channels=24, kernel_size=3, padding=1, groups=2, bias=False)
    add("hswish", "activation", ["c2"], kind="hardswish")
    add("mix", "dropin", ["hswish", "reg"], length=10)
    add("gate", "gated_add", ["mix", "reg"], kind="stochastic_depth", drop_prob=0.25)
    add("bicubic", "resize", ["gate"], shape=[24, 9, 9], method="interpolate")
    add("grow", "resize", ["bicubic"], shape=[24, 10, 10], method="crop")
    add("mp", "maxpool", ["grow"], kernel_size=2, stride=1)
    add("ap", "avgpool", ["mp"], kernel_size=3, stride=2, padding=1, ceil_mode=True)
    add("adapt", "adaptive_avgpool", ["ap"], output_size=[2, 3])
    add("same", "identity", ["adapt"])
    add("wdrop", "width_dropout", ["same"], retain=0.75)
    add("flat", "flatten", ["wdrop"])
    add("fc1", "linear", ["flat"], out_features=32)
    add("drop", "dropout", ["fc1"], p=0.2)
    add("elu", "activation", ["drop"], kind="elu")
    add("fc_a", "linear", ["elu"], out_features=32)
    add("fc_b", "linear", ["elu"], out_features=32, bias=False)
    add("sum", "add", ["fc_a", "fc_b", "elu"])
    add("bn1d", "batchnorm", ["sum"], eps=1e-3, momentum=0.2)
    add("pad1d", "channel_pad", ["bn1d"], channels=40)
    add("cut", "resize", ["pad1d"], shape=[36], method="crop")
    add("out", "linear", ["cut"], out_features=5)
    add("output", "output", ["out"])
    g.validate()
    return g


def tokens() -> NetGraph:
    """The ops imported torchvision networks add: squeeze-and-excitation, channel shuffle,
    chunks, layer scale, drop path, channels-last layer norm, tokens and self-attention."""
    g = NetGraph()

    def add(node, op, inputs, **params):
        return g.add(node, LayerSpec(op, **params), inputs)

    add("input", "input", [], shape=[4, 8, 8])
    add("c1", "conv", ["input"], out_channels=16, kernel_size=3, padding=1)
    add("shuffle", "channel_shuffle", ["c1"], groups=4)
    add("half_a", "slice", ["shuffle"], dim=0, start=0, stop=8)
    add("half_b", "slice", ["shuffle"], dim=0, start=8, stop=16)
    add("squeeze", "adaptive_avgpool", ["half_a"], output_size=1)
    add("excite", "activation", ["squeeze"], kind="sigmoid")
    add("se", "mul", ["excite", "half_b"])
    add("scale", "param", ["se"], shape=[8, 1, 1], mode="mul", value=0.7)
    add("one", "concat", ["scale"])
    add("c2", "conv", ["one"], out_channels=8, kernel_size=3, padding=1)
    add("drop_path", "gated_add", ["c2", "half_a"], kind="drop_path", drop_prob=0.2)
    add("last", "permute", ["drop_path"], dims=[1, 2, 0])
    add("ln", "layer_norm", ["last"], eps=1e-6)
    add("seq", "reshape", ["ln"], shape=[64, 8])
    add("cls", "param", ["seq"], shape=[1, 8], mode="prepend", value=0.5)
    add("pos", "param", ["cls"], shape=[65, 8], mode="add", init_std=0.02)
    add("attn", "attention", ["pos"], heads=2)
    add("mlp", "linear", ["attn"], out_features=8)
    add("ln2", "layer_norm", ["mlp"], affine=False, bias=False)
    add("first", "select", ["ln2"], dim=0, index=0)
    add("out", "linear", ["first"], out_features=5)
    add("output", "output", ["out"])
    g.validate()
    return g


def grown() -> tuple[NetGraph, dict]:
    """convnet with a block grown after relu1_1, joined by a gradual DropIn (length 10)."""
    base = build("convnet", widths=(4, 8))
    graph, _ = grow_stage(base, Growth.start(["relu1_1"]), stage=1, mode="append",
                          dropin_length=10, stagger=0, stage_iters=10)  # fmt: skip
    return graph, randomized(GraphNet(graph)).state_dict()


def collapsed() -> tuple[NetGraph, dict]:
    graph, state = grown()
    small = collapse_all(graph)
    return small, state_for(small, state)


def widened(init: str) -> tuple[NetGraph, dict]:
    net = randomized(GraphNet(build("convnet", widths=(4, 8))))
    wide = widen_gradually(net, "conv1_1", 4, dropin_length=10, start=0, init=init, seed=1)
    return wide.graph, wide.state_dict()


def gpt_residual(how: str) -> tuple[NetGraph, dict]:
    """A one-block GPT's residual stream (16 wide) widened by 8 units mixing in, or swept at
    half its width: its norms over a prefix of their features."""
    net = randomized(GraphNet(build("gpt", depth=1, width=16, heads=2, in_shape=(6,),
                                    num_classes=11)))  # fmt: skip
    if how == "widened":
        wide = widen_gradually(net, "tok", 8, dropin_length=10, start=0, seed=1)
        return wide.graph, wide.state_dict()
    return with_group_dropout(net.graph, group_of(net.graph, "tok"), 0.5), net.state_dict()


GPT_MIXING = dict.fromkeys(["attn1_in_wdi", "fc1_1_in_wdi", "head_in_wdi", "ln1_1", "ln1_2",
                            "ln_f"], 0.5)  # fmt: skip


def zoo(name: str, **options):
    def make() -> tuple[NetGraph, dict]:
        graph = build(name, **options)
        return graph, randomized(GraphNet(graph)).state_dict()

    return make


def narrowed_heads() -> tuple[NetGraph, dict]:
    graph = build("gpt", depth=1, width=16, heads=4, in_shape=(6,), num_classes=11)
    thin = narrow_heads(randomized(GraphNet(graph)), "attn1", [3, 1])
    return thin.graph, thin.state_dict()


def swin(name: str, **options):
    """torchvision's Swin imported at 40 pixels (10 tokens a side, then 5, 3 and 2: padded and
    shifted windows, odd patch merges), or a two-stage one built with ``options``."""

    def make() -> tuple[NetGraph, dict]:
        torch.manual_seed(0)
        if options:
            v2 = torchvision.models.swin_transformer
            module = v2.SwinTransformer(**options, block=v2.SwinTransformerBlockV2,
                                        downsample_layer=v2.PatchMergingV2)  # fmt: skip
        else:
            module = torchvision.models.get_model(name)
        return import_module(module, (3, 40, 40), name=name)

    return make


def densenet_swept() -> tuple[NetGraph, dict]:
    """A small DenseNet with its stem's channels swept at half: zeroed at the readers behind
    each concat's batchnorm, over the span of channels they hold there."""
    torch.manual_seed(0)
    module = torchvision.models.DenseNet(
        growth_rate=4, block_config=(2,), num_init_features=8, bn_size=2, num_classes=5
    )
    graph, state = import_module(module.eval(), (3, 16, 16))
    net = randomized(GraphNet.with_state(graph, state))
    group = group_of(graph, "features_conv0")
    assert group.zeroed_behind
    return with_group_dropout(graph, group, 0.5), net.state_dict()


def densenet_widened() -> tuple[NetGraph, dict]:
    """The small DenseNet's stem widened by 4 channels mixing in (at the readers behind each
    concat's batchnorm, over the stem's span there), Net2Net split: stand-ins at an offset."""
    torch.manual_seed(0)
    module = torchvision.models.DenseNet(
        growth_rate=4, block_config=(2,), num_init_features=8, bn_size=2, num_classes=5
    )
    graph, state = import_module(module.eval(), (3, 16, 16))
    net = randomized(GraphNet.with_state(graph, state))
    wide = widen_gradually(net, "features_conv0", 4, dropin_length=10, start=0, init="net2net")
    return wide.graph, wide.state_dict()


def maxvit() -> tuple[NetGraph, dict]:
    """A two-block MaxViT imported at 16 pixels: 2x2 windows and grids, group attention."""
    torch.manual_seed(0)
    module = torchvision.models.maxvit.MaxVit(
        input_size=(16, 16), stem_channels=8, partition_size=2, block_channels=[16, 32],
        block_layers=[1, 1], head_dim=8, stochastic_depth_prob=0.0, num_classes=5,
    )  # fmt: skip
    return import_module(module, (3, 16, 16), name="maxvit")


# name: (graph and executor state, q of the mixers, whether train mode is comparable)
CASES = {
    "convnet": (zoo("convnet"), {}, True),
    "mlp": (zoo("mlp", in_shape=(13,), num_classes=3), {}, True),
    "mlp_dropout": (zoo("mlp", in_shape=(13,), num_classes=3, dropout=0.3), {}, False),
    "lenet": (zoo("lenet"), {}, True),
    "cifar_resnet8": (zoo("cifar_resnet", depth=8), {}, True),
    "resnet8_stochastic_depth": (
        zoo("cifar_resnet", depth=8, stochastic_depth="linear"),
        {},
        False,
    ),
    "resnet8_depth_dropout": (
        zoo("cifar_resnet", depth=8, depth_dropout=0.5, shortcut="conv1x1"),
        {},
        False,
    ),
    "caffe_cifar_lrn": (zoo("cifar10_3layer"), {}, True),
    "grown_collapsed": (collapsed, {}, True),
    "grown_mid_schedule": (grown, {"relu1_1_g1b0_dropin": 0.3}, True),
    "widened_random": (lambda: widened("random"), {"conv2_1_in_wdi": 0.5}, True),
    "widened_net2net": (lambda: widened("net2net"), {"conv2_1_in_wdi": 0.75}, True),
    "sink": (
        lambda: (sink(), randomized(GraphNet(sink()), seed=3).state_dict()),
        {"mix": 0.3},
        False,
    ),
    # drop path scales its branch in training: eval only
    "tokens": (lambda: (tokens(), GraphNet(tokens()).state_dict()), {}, False),
    "gpt": (zoo("gpt", depth=2, width=16, heads=2, in_shape=(6,), num_classes=11), {}, True),
    "gpt_rms_untied": (
        zoo("gpt", depth=1, width=8, heads=2, in_shape=(4,), num_classes=5, norm="rms",
            tie=False, bias=True),
        {},
        True,
    ),
    "vit": (zoo("vit", patch=4, depth=1, width=16, heads=2, in_shape=(3, 8, 8)), {}, True),
    "gpt_narrowed_heads": (narrowed_heads, {}, True),
    "gpt_residual_mid_growth": (lambda: gpt_residual("widened"), GPT_MIXING, True),
    "gpt_residual_swept": (lambda: gpt_residual("swept"), {}, True),
    # drop path again: eval only
    "swin_t": (swin("swin_t"), {}, False),
    "swin_v2_small": (
        swin("swin_v2", patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 4],
             window_size=[4, 4], stochastic_depth_prob=0.0),
        {},
        True,
    ),
    "maxvit": (maxvit, {}, True),
    "densenet_swept": (densenet_swept, {}, True),
    "densenet_mid_growth": (densenet_widened, 0.5, True),  # every width DropIn at q = 0.5
}


def standalone(graph: NetGraph, state: dict, mix: dict) -> tuple[torch.nn.Module, str]:
    code = standalone_source(graph, mix=mix)
    namespace: dict = {}
    exec(compile(code.source, "model.py", "exec"), namespace)
    net = namespace["Net"]()
    net.load_state_dict(code.state_dict(state))
    return net, code.source


def executor(graph: NetGraph, state: dict, mix: dict) -> GraphNet:
    net = GraphNet(graph)
    net.load_state_dict(state)
    net.set_plan(StepPlan(dropin_q=mix))
    return net


@pytest.mark.parametrize("name", list(CASES))
def test_standalone_module_computes_what_the_executor_does(name):
    make, mix, train_too = CASES[name]
    graph, state = make()
    if isinstance(mix, float):
        mix = dict.fromkeys(graph.nodes_of("width_dropin"), mix)
    net, source = standalone(graph, state, mix)
    reference = executor(graph, state, mix)
    x = example_input(graph, torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), reference.eval()(x), rtol=0, atol=ATOL)
    if train_too:  # BatchNorm on the batch's statistics, running statistics updated alike
        torch.testing.assert_close(net.train()(x), reference.train()(x), rtol=0, atol=ATOL)
        ours = {k: v for k, v in net.state_dict().items() if "running" in k}
        theirs = standalone_source(graph, mix=mix).state_dict(reference.state_dict())
        for key, value in ours.items():
            torch.testing.assert_close(value, theirs[key], rtol=0, atol=ATOL)
    tree = ast.parse(source)
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"torch", "torch.nn", "torch.nn.functional"}, imported


@pytest.mark.parametrize("make", [tokens, lambda: build("gpt", depth=1, width=8, heads=2,
                                                          in_shape=(4,), num_classes=5),
                                  lambda: narrowed_heads()[0], lambda: swin("swin_t")()[0],
                                  lambda: maxvit()[0]])
def test_torch_export_runs_the_imported_networks_ops(make):
    graph = make()
    net, _ = standalone(graph, GraphNet(graph).state_dict(), {})
    x = example_input(graph, torch.Generator().manual_seed(1))
    net.eval()
    program = torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), net(x), rtol=0, atol=ATOL)


@pytest.mark.parametrize(
    ("graph", "mix", "message"),
    [
        (lambda: grown()[0], {}, "depends on the training iteration"),
        (lambda: sink(), {"mix": 1.5}, "q must be in [0, 1]"),
        (lambda: blob(sink()), {"mix": 0.5}, "blob layout at q=0.5"),
    ],
)
def test_what_no_fixed_module_computes_is_refused_naming_the_node(graph, mix, message):
    with pytest.raises(GraphError, match=r"node '(mix|relu1_1_g1b0_dropin)'") as err:
        standalone_source(graph(), mix=mix)
    assert message in str(err.value) and "\n" not in str(err.value)


def blob(graph: NetGraph) -> NetGraph:
    graph.set_spec("mix", graph.spec("mix").replace(layout="blob"))
    return graph


def test_blob_layout_is_exported_once_its_schedule_is_over():
    graph = blob(sink())
    state = GraphNet(graph).state_dict()
    for q in (0.0, 1.0):
        net, _ = standalone(graph, state, {"mix": q})
        x = torch.randn(3, *graph.input_shape)
        with torch.no_grad():
            want = executor(graph, state, {"mix": q}).eval()(x)
            torch.testing.assert_close(net.eval()(x), want, rtol=0, atol=ATOL)


def test_names_that_python_or_torch_use_are_renamed():
    g = NetGraph()
    g.add("input", LayerSpec("input", shape=[4]))
    g.add("class", LayerSpec("linear", out_features=4), ["input"])
    g.add("F", LayerSpec("relu"), ["class"])
    g.add("x", LayerSpec("linear", out_features=2), ["F"])
    g.add("a-b", LayerSpec("activation", kind="tanh"), ["x"])
    g.add("a_b", LayerSpec("identity"), ["a-b"])
    g.add("output", LayerSpec("output"), ["a_b"])
    net, source = standalone(g, GraphNet(g).state_dict(), {})
    assert "self.class_ = nn.Linear(4, 4)" in source and "F_ = self.F_(class_)" in source
    assert "a_b = self.a_b(x_)" in source
    assert sorted(net.state_dict()) == ["class_.bias", "class_.weight", "x_.bias", "x_.weight"]
    assert net(torch.ones(2, 4)).shape == (2, 2)


# --------------------------------------------------------------------------- the folder


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file()
        else "folder"
        for p in sorted(root.rglob("*"))
    }  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A tiny trained run (5 iterations on digits), the other layouts a run can have, and
    broken files."""
    w = tmp_path_factory.mktemp("world")

    def train(name: str, **given) -> None:
        config = TrainConfig(model="convnet", dataset="digits", max_iter=5, test_interval=5,
                             display_interval=5, quiet=True, runs_dir=str(w / "runs"),
                             name=name)  # fmt: skip
        Trainer(config, **given).run()

    train("done")
    run = w / "runs" / "done"
    state = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    search = w / "search"  # a search's run directory: graph.json + weights.pt
    search.mkdir()
    shutil.copy(run / "graph.json", search / "graph.json")
    torch.save(state, search / "weights.pt")
    model = w / "modeldir" / "model"  # a run directory with model/
    model.mkdir(parents=True)
    for name in ("graph.json", "weights.pt"):
        shutil.copy(search / name, model / name)
    (model / "config.json").write_text("{}")
    (w / "empty").mkdir()
    (w / "bad.json").write_text("{ not json")
    (w / "notes.txt").write_text("a text file")
    (w / "junk.pt").write_text("not torch")
    torch.save({"layers.nope.weight": torch.zeros(1)}, w / "other.pt")
    (w / "unsaved").mkdir()
    shutil.copy(run / "graph.json", w / "unsaved" / "graph.json")
    broken = w / "runs" / "broken"
    broken.mkdir()
    (broken / "checkpoint.pt").write_text("not a checkpoint")
    (w / "full").mkdir()
    torch.save(state, w / "full" / "weights.pt")
    graph, grown_state = grown()
    graph.to_json(w / "grown.json")
    torch.save(grown_state, w / "grown.pt")
    # a run stopped part-way through its DropIn's schedule: at iteration 5 of 10
    train("growing", graph=graph, init_state=grown_state)
    # a ratio sweep's point: the DropIn held at q = 0.25 throughout
    train("held", graph=graph, init_state=grown_state,
          fixed_dropin_q={graph.nodes_of("dropin")[0]: 0.25})  # fmt: skip
    blob(sink()).to_json(w / "blob.json")
    return w


SOURCES = ["runs/done", "runs/done/checkpoint.pt", "search", "modeldir",
           ("search/graph.json", "search/weights.pt"),
           ("runs/done/graph.json", "runs/done/checkpoint.pt")]  # fmt: skip


@pytest.mark.parametrize("source", SOURCES, ids=str)
def test_load_model_reads_every_kind_of_run(source, world):
    path, weights = (source, None) if isinstance(source, str) else source
    net = load_model(world / path, weights=weights and world / weights)
    assert not net.training
    trained = GraphNet(NetGraph.from_json(world / "runs/done/graph.json"))
    trained.load_state_dict(torch.load(world / "search/weights.pt", weights_only=True))
    x = torch.randn(6, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(net(x), trained.eval()(x), rtol=0, atol=0)


def test_a_run_stopped_mid_schedule_is_exported_as_its_last_step_mixed(world, tmp_path):
    result = export_model(world / "runs/growing", tmp_path / "out", onnx=False)
    # the plan of its last step (iteration 4 of a 10-step schedule), as the run evaluated it
    assert any("gradual DropIn at q=0.6" in note for note in result.notes), result.notes
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        program = torch.export.load(tmp_path / "out" / "model.pt2").module()
        want = load_model(world / "runs/growing")(x)
        torch.testing.assert_close(program(x), want, rtol=0, atol=ATOL)
        at_end = load_model(world / "runs/growing", iteration=10)(x)  # q = 0: new path alone
    assert not torch.allclose(at_end, want)


def test_a_run_held_at_a_fixed_ratio_is_exported_at_that_ratio(world, tmp_path):
    result = export_model(world / "runs/held", tmp_path / "out", onnx=False)
    assert any("gradual DropIn at q=0.25" in note for note in result.notes), result.notes


def test_a_graph_file_alone_is_its_fresh_initialisation(world, capsys):
    out = world.parent / "fresh"
    assert main(["export", str(world / "runs/done/graph.json"), "-o", str(out)]) == 0
    assert "no weights: the graph's fresh initialisation" in capsys.readouterr().out
    shutil.rmtree(out)


def test_cli_exports_a_trained_run(world, tmp_path, capsys):
    out = tmp_path / "deep" / "export"
    assert main(["export", str(world / "runs/done"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    onnx = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript"))
    files = {"model.py", "weights.pt", "model.pt2"} | ({"model.onnx"} if onnx else set())
    assert {p.name for p in out.iterdir()} == files
    assert ("ONNX skipped" in printed) != onnx
    net = load_model(world / "runs/done")
    x = torch.randn(3, 1, 8, 8)  # another batch size than the export's own check
    with torch.no_grad():
        want = net(x)
        program = torch.export.load(out / "model.pt2").module()
        torch.testing.assert_close(program(x), want, rtol=0, atol=ATOL)
    # model.py and weights.pt run in a fresh interpreter where grownet cannot be imported
    torch.save((x, want), tmp_path / "check.pt")
    check = textwrap.dedent("""
        import sys
        sys.modules["grownet"] = None  # any import of grownet fails from here on
        sys.path.insert(0, ".")
        import torch
        from model import INPUT_SHAPE, Net
        net = Net()
        net.load_state_dict(torch.load("weights.pt", weights_only=True))
        x, want = torch.load(sys.argv[1], weights_only=True)
        assert tuple(x.shape[1:]) == INPUT_SHAPE
        print(float((net.eval()(x) - want).abs().max()))
    """)
    done = subprocess.run([sys.executable, "-I", "-c", check, str(tmp_path / "check.pt")],
                          cwd=out, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) <= ATOL


def test_onnx_computes_what_the_executor_does(world, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    result = export_model(world / "grown.json", tmp_path / "out", weights=world / "grown.pt",
                          iteration=3)  # fmt: skip
    assert "model.onnx" in result.files
    model = onnx.load(str(tmp_path / "out" / "model.onnx"))
    onnx.checker.check_model(model)
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(tmp_path / "out" / "model.onnx"))
    x = torch.randn(7, 1, 8, 8)
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = load_model(world / "grown.json", weights=world / "grown.pt", iteration=3)(x)
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=0, atol=ATOL)


def test_an_empty_folder_is_filled_and_a_failing_onnx_exporter_only_skips_onnx(
    world, tmp_path, monkeypatch
):
    def fail(*args):
        raise TypeError("unsupported op\nmore detail")

    monkeypatch.setattr(export, "_onnx_missing", lambda: "")
    monkeypatch.setattr(export, "_onnx", fail)
    (tmp_path / "out").mkdir()
    result = export_model(world / "runs/done", tmp_path / "out")
    assert result.onnx_skipped == (
        "ONNX skipped: torch's exporter gave no usable model (TypeError: unsupported op)"
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "model.pt2", "model.py", "weights.pt"
    ]  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left


def test_overwrite_replaces_only_the_export_files(world, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_text("stale")
    (out / "notes.txt").write_text("mine")
    result = export_model(world / "runs/done", out, overwrite=True, onnx=False)
    assert result.files == ["model.py", "weights.pt", "model.pt2"]
    assert sorted(p.name for p in out.iterdir()) == ["model.pt2", "model.py", "notes.txt",
                                                      "weights.pt"]  # fmt: skip
    assert (out / "notes.txt").read_text() == "mine"


MISTAKES = [
    (["W/nope"], "does not exist"),
    (["W/empty"], "is not a grownet run"),
    (["W/notes.txt"], "neither a run directory nor a graph .json file"),
    (["W/unsaved"], "holds graph.json but no weights"),
    (["W/bad.json"], "bad.json is not valid JSON"),
    (["W/runs/broken"], "not a grownet checkpoint"),
    (["W/runs/done/graph.json", "--weights", "W/junk.pt"], "junk.pt: not a weights file"),
    (["W/runs/done/graph.json", "--weights", "W/nope.pt"], "nope.pt: does not exist"),
    (["W/runs/done/graph.json", "--weights", "W/other.pt"], "does not fit the graph"),
    (["W/runs/done", "--weights", "W/other.pt"], "--weights goes with a graph .json file"),
    (["W/grown.json", "--weights", "W/grown.pt"], "changes with the training iteration"),
    (["W/blob.json", "--iteration", "5"], "blob layout"),
    (["W/runs/done", "--iteration", "-1"], "must be an integer >= 0, got -1"),
    (["W/runs/done", "-o", "W/full"], "the folder is not empty"),
    (["W/runs/done", "-o", "W/notes.txt"], "is a file, not a directory"),
    (["W/runs/done", "-o", "W/runs/done", "--overwrite"], "holds a grownet run"),
    (
        ["W/runs/done/graph.json", "--weights", "W/full/weights.pt", "-o", "W/full", "--overwrite"],
        "which it reads",
    ),
]


@pytest.mark.parametrize(("argv", "message"), MISTAKES, ids=lambda v: str(v)[:40])
def test_mistakes_are_one_line_and_write_nothing(argv, message, world, capsys, monkeypatch):
    monkeypatch.delenv("GROWNET_DEBUG", raising=False)
    if "-o" not in argv:
        argv = [*argv, "-o", "W/exported"]
    argv = ["export", *(a.replace("W/", f"{world}/") for a in argv)]
    before = snapshot(world)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("grownet: error: "), err
    assert message in err, err
    assert snapshot(world) == before


def test_the_readme_names_the_command():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "grownet export" in readme and "load_model" in readme
