"""Width growth in a search: width stages, both ways, the function kept at each widening."""

import json
import os

import pytest
import torch

from grownet.graph import GraphError, NetGraph
from grownet.graph.executor import GraphNet
from grownet.graph.widen import without_width_mixers
from grownet.report.load import check_stage
from grownet.search import runner
from grownet.search.spec import GrowthSpec, load_spec
from grownet.search.widen_stage import planned_widths, widen_stage, width_blocked
from grownet.zoo import build

SPEC = """
name = "wide"
dataset = "digits"
[base]
model = "convnet"
options = {{ widths = [4, 8], convs = 1 }}
[train]
batch_size = 32
base_lr = 0.05
lr_policy = "cosine"
test_interval = 40
display_interval = 20
quiet = true
threads = 1
[growth]
kind = "{kind}"
insert_after = ["relu1_1", "relu2_1"]
stage_iters = 80
dropin_length = 40
stagger = 10
width_init = "{init}"
min_gain = -1.0     # every stage pays: the test scripts the order of kinds
max_stages = {stages}
[depth]
ratios = [0.5, 0.25]
iters_per_ratio = 20
[width]
ratios = [0.75, 0.5]
iters_per_ratio = 20
[verify]
iters = 40
tolerance = 0.5
backoff = 0
"""


def spec_at(tmp_path, *, kind="both", init="random", stages=2):
    path = tmp_path / f"{kind}.toml"
    path.write_text(SPEC.format(kind=kind, init=init, stages=stages))
    return load_spec(path, runs_dir=str(tmp_path / "runs"))


def stages_of(out):
    return [check_stage(json.loads(line)) for line in (out / "stages.jsonl").open()]


@pytest.fixture(scope="module")
def grown_both(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("both")
    spec = spec_at(tmp)
    lines = []
    summary = runner.Search(spec, echo=lines.append, quiet=True).run()
    return spec, summary, lines, tmp / "runs" / spec.name


def test_both_ways_tries_depth_then_width_from_the_kept_network(grown_both):
    _, summary, lines, out = grown_both
    stages = stages_of(out)
    assert [(s["kind"], s["parent"]) for s in stages] == [("base", 0), ("depth", 0), ("width", 1)]
    assert stages[2]["action"] == "widen conv1_1 4->8, conv2_1 8->16"
    assert [w["start"] for w in stages[2]["widened"]] == [0, 10]  # staggered, like blocks
    widths = NetGraph.from_json(out / "graphs" / "stage_2.json").shapes()
    assert widths["conv1_1_g1b0"][0] == 8  # a grown block widens with its position's group
    assert summary["grown"] == ["depth", "width"] and summary["depth_pays"]
    assert "growth pays: kept stage 2, grown by depth, width" in (out / "summary.txt").read_text()
    assert any("training 2 widened layer group(s)" in line for line in lines)


def test_the_recommendation_has_no_width_mixers(grown_both):
    out = grown_both[3]
    assert not NetGraph.from_json(out / "graph.json").nodes_of("width_dropin")
    assert NetGraph.from_json(out / "graphs" / "stage_2.json").nodes_of("width_dropin")


def test_a_rerun_redoes_no_width_stage(grown_both):
    spec, summary, _, out = grown_both
    before = {p: os.stat(p).st_mtime_ns for p in out.rglob("checkpoint.pt")}
    again = runner.Search(spec, echo=lambda s: None, quiet=True).run()
    assert {p: os.stat(p).st_mtime_ns for p in out.rglob("checkpoint.pt")} == before
    assert again["recommended"] == summary["recommended"]


def test_width_only_search_with_net2net_splits(tmp_path):
    spec = spec_at(tmp_path, kind="width", init="net2net", stages=2)
    summary = runner.Search(spec, echo=lambda s: None, quiet=True).run()
    stages = stages_of(tmp_path / "runs" / spec.name)
    assert [s["kind"] for s in stages] == ["base", "width", "width"]
    assert [s["parent"] for s in stages] == [0, 0, 1]  # one kind: grows on from the last
    assert [s["depth"] for s in stages] == [3, 3, 3]
    assert stages[2]["action"] == "widen conv1_1 8->16, conv2_1 16->32"
    assert summary["grown"] == ["width", "width"] and not summary["depth_pays"]


@pytest.mark.parametrize("init", ["random", "net2net"])
def test_a_width_stage_starts_from_the_parents_function(init):
    torch.manual_seed(0)
    graph = build("convnet", widths=[4, 8], convs=2, in_shape=(1, 8, 8))
    parent = GraphNet(graph)
    for module in parent.modules():  # batchnorm statistics that are not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    growth = GrowthSpec(kind="width", width_step=3, width_init=init, stage_iters=50,
                        dropin_length=20, stagger=5)  # fmt: skip
    wide_graph, state, plans = widen_stage(graph, parent.state_dict(), growth, stage=1, seed=0)
    wide = GraphNet(wide_graph)
    wide.load_state_dict(state)
    x = torch.randn(5, 1, 8, 8)
    for train in (True, False):
        parent.train(train), wide.train(train)
        with torch.no_grad():
            torch.testing.assert_close(wide(x), parent(x), rtol=0, atol=1e-6)
    assert [(p["from"], p["to"]) for p in plans] == [(4, 7), (4, 7), (8, 11), (8, 11)]
    assert [p["start"] for p in plans] == [0, 5, 10, 15]
    assert not without_width_mixers(wide_graph).nodes_of("width_dropin")


def test_max_width_caps_and_then_blocks():
    graph = build("lenet")
    growth = GrowthSpec(kind="width", max_width=60)
    assert [(p["from"], p["to"]) for p in planned_widths(graph, growth)] == [(20, 40), (50, 60)]
    assert "every widenable layer is at max_width 20" in width_blocked(
        graph, GrowthSpec(kind="width", max_width=20)
    )


@pytest.mark.parametrize(
    ("growth", "to"),
    [
        (GrowthSpec(kind="width", width_step=2), 20),  # rounded up to a whole conv group
        (GrowthSpec(kind="width", width_factor=1.5), 24),
        (GrowthSpec(kind="width", width_factor=2.0, max_width=26), 24),  # capped, whole groups
    ],
)
def test_a_grouped_conv_grows_by_whole_conv_groups(growth, to):
    import dataclasses

    import torch
    from torch import nn

    from grownet.graph.fx_import import import_module

    torch.manual_seed(0)
    bottleneck = nn.Sequential(  # a 1x1 conv to 16, then a 3x3 conv in 4 groups of 4
        nn.Conv2d(3, 16, 1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=4), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 8, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )  # fmt: skip
    graph, state = import_module(bottleneck, (3, 8, 8))
    plans = {p["layer"]: (p["from"], p["to"]) for p in planned_widths(graph, growth)}
    assert plans["_0"] == (16, to)
    net2net = dataclasses.replace(growth, width_init="net2net")
    wide, _, done = widen_stage(graph, state, net2net, stage=1, seed=0)
    assert wide.spec("_3").params["groups"] == to // 4
    assert next(p for p in done if p["layer"] == "_0")["init"] == "random"  # not a split


def test_a_width_stage_that_cannot_mix_in_within_its_stage_is_refused():
    graph = build("lenet")
    net = GraphNet(graph)
    growth = GrowthSpec(kind="width", stage_iters=50, dropin_length=40, stagger=10)
    with pytest.raises(GraphError, match="need 60 iterations, the stage has 50"):
        widen_stage(graph, net.state_dict(), growth, stage=1, seed=0)
