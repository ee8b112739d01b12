"""Width on imported torchvision networks: a width growth stage and a width sweep, each
narrowing or widening whole coupled groups (depthwise convs, SE products, channels-last layer
norms, layer scales, channels at an offset behind concats), run end to end on
MobileNetV3-small, EfficientNet-B0, DenseNet-121, ConvNeXt-tiny and SqueezeNet 1.1 at 32x32
(a few iterations each, batch 4, one thread); and the residual units a depth-dropout sweep
finds in imported networks."""

import json

import numpy as np
import pytest
import torch
import torchvision

from grownet.graph import NetGraph
from grownet.graph.coupling import group_of
from grownet.graph.executor import GraphNet
from grownet.graph.fx_import import import_module
from grownet.report.load import check_sweeps
from grownet.search import runner
from grownet.search.residual import residual_units, units_removed, with_drop, without_units
from grownet.search.spec import load_spec
from grownet.search.sweeps import width

SPEC = """
name = "{net}"
dataset = "npz:{data}"
[base]
model = "import:torchvision.models:{net}"  # num_classes through its **kwargs
[train]
batch_size = 4
base_lr = 0.01
test_interval = 2
display_interval = 2
threads = 1
quiet = true
[growth]
kind = "width"
max_stages = 1
stage_iters = 2
dropin_length = 1
width_step = 2
min_gain = -1.0
baseline = false
[depth]
enabled = false
[width]
ratios = [0.75, 0.5]
iters_per_ratio = 1
per_layer = false
max_rise = 0.99
[verify]
iters = 1
tolerance = 0.99
backoff = 0
"""


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """16 training and 8 test images of 3x32x32 in two classes."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("images") / "d.npz"
    x = rng.integers(0, 256, (24, 3, 32, 32), dtype=np.uint8)
    y = np.arange(24) % 2
    np.savez(path, x=x[:16], y=y[:16], x_test=x[16:], y_test=y[16:])
    return path


# DenseNet-121's 120 groups each grown, swept and narrowed take a minute here: its stem (through
# every concat of block 1), a layer's new features (through the concats after it) and a
# bottleneck inside a layer stand for them
CHOSEN = {"densenet121": ["features_conv0", "features_denseblock1_denselayer1_conv2",
                          "features_denseblock2_denselayer3_conv1"]}  # fmt: skip


@pytest.mark.parametrize(
    "net",
    ["mobilenet_v3_small", "efficientnet_b0", "densenet121", "convnext_tiny", "squeezenet1_1"],
)
def test_width_growth_and_sweep_on_an_imported_network(net, images, tmp_path):
    path = tmp_path / f"{net}.toml"
    text = SPEC.format(net=net, data=images)
    if net in CHOSEN:
        layers = json.dumps(CHOSEN[net])
        text = text.replace("[growth]\n", f"[growth]\nwidth_layers = {layers}\n")
        text = text.replace("[width]\n", f"[width]\nlayers = {layers}\n")
    path.write_text(text)
    spec = load_spec(path, runs_dir=str(tmp_path / "runs"))
    runner.Search(spec, echo=lambda s: None, quiet=True).run()
    out = tmp_path / "runs" / net
    stages = [json.loads(line) for line in (out / "stages.jsonl").open()]
    assert [s["kind"] for s in stages] == ["base", "width"]
    widened = stages[1]["widened"]
    assert widened and all(w["to"] == w["from"] + 2 for w in widened)
    (sweep,) = check_sweeps(json.loads((out / "sweeps.json").read_text()))
    assert sweep["kind"] == "width" and sweep["verification"] is not None
    coupled = [unit for unit in sweep["units"] if len(unit) > 1]
    assert coupled or net in ("densenet121", "squeezenet1_1")  # their joins are concats
    grown = NetGraph.from_json(out / "graphs" / "stage_1.json")
    graph = NetGraph.from_json(out / "graph.json")  # the recommendation, plain
    # a fire module's expansions reach a concat, and were grown and swept through it; a
    # DenseNet's concats feed batchnorms: its groups are grown and swept at the readers
    # behind them
    through = {unit[0] for unit in sweep["units"] if group_of(graph, unit[0]).concats}
    assert bool(through) == (net in ("densenet121", "squeezenet1_1"))
    assert through <= {w["layer"] for w in widened}
    if net in CHOSEN:
        assert [u[0] for u in sweep["units"]] == [w["layer"] for w in widened] == CHOSEN[net]
        assert len(through) == 2
    verification = sweep["verification"]
    assert verification["passed"]  # tolerance 0.99: any finished run passes
    assert verification["reduced_params"] < verification["full_params"]
    # the recommendation is the grown network narrowed, coupled groups as one
    keep = sweep["estimate"]["channels"]
    for unit in sweep["units"]:
        params = [graph.spec(node).params for node in unit]
        widths = {p.get("out_channels", p.get("out_features")) for p in params}
        assert widths == {keep[unit[0]]}
        assert keep[unit[0]] < width(grown, unit[0])


@pytest.mark.parametrize(
    ("net", "units"),
    [
        ("resnet18", 5),  # the blocks without a projection shortcut
        ("mobilenet_v3_small", 6),
        ("efficientnet_b0", 9),  # stochastic depth: gated adds already
    ],
)
def test_residual_units_of_imported_networks(net, units):
    graph, state = import_module(getattr(torchvision.models, net)(num_classes=10), (3, 32, 32))
    found = residual_units(graph)
    assert len(found) == units
    # a plain add becomes a gate with its branch first, the same sum while open
    gated = with_drop(graph, found, 0.0)
    assert set(gated.nodes_of("gated_add")) >= set(found)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    full, gate = GraphNet(graph).eval(), GraphNet(gated).eval()
    full.load_state_dict(state)
    gate.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(gate(x), full(x))
    shallower = without_units(gated, found, 0.5)
    assert len(residual_units(shallower)) == units - units_removed(0.5, units)
