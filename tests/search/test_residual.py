"""The depth-dropout depth sweep on residual networks: which units, how many, and end to end."""

import json

import pytest

from grownet.cli import main
from grownet.search import runner
from grownet.search.grow import weighted_depth
from grownet.search.residual import (
    residual_units,
    spread,
    units_removed,
    with_drop,
    without_units,
)
from grownet.search.spec import load_spec
from grownet.zoo import build


@pytest.mark.parametrize(
    ("model", "options", "count", "first"),
    [
        ("cifar_resnet", {"depth": 20}, 7, "layer1_0_add"),  # 9 units, 2 downsample
        ("cifar_resnet", {"depth": 20, "shortcut": "conv1x1"}, 7, "layer1_0_add"),
        ("cifar_resnet", {"depth": 32, "shortcut": "B"}, 13, "layer1_0_add"),
        ("imagenet_resnet", {"depth": 18}, 5, "layer1_0_add"),
        ("imagenet_resnet", {"depth": 50}, 12, "layer1_1_add"),  # layer1_0 widens 64 -> 256
        ("convnet", {}, 0, None),
    ],
)
def test_residual_units_keep_their_shape(model, options, count, first):
    graph = build(model, **options)
    units = residual_units(graph)
    assert len(units) == count
    assert (units[0] if units else None) == first
    assert not {"layer2_0_add", "layer3_0_add"} & set(units)


@pytest.mark.parametrize(
    ("ratio", "units", "removed"),
    [(0.0, 9, 0), (0.25, 6, 2), (0.5, 9, 5), (0.75, 8, 6), (0.1, 3, 0), (0.99, 4, 4)],
)
def test_units_removed_rounds_half_up(ratio, units, removed):
    assert units_removed(ratio, units) == removed


@pytest.mark.parametrize(
    ("count", "chosen"),
    [(0, []), (1, ["d"]), (2, ["b", "e"]), (3, ["b", "d", "f"]), (6, list("abcdef"))],
)
def test_spread_is_even_along_the_network(count, chosen):
    assert spread(list("abcdef"), count) == chosen


def test_spread_refuses_more_than_there_are():
    with pytest.raises(ValueError, match=r"count must be in 0\.\.2, got 3"):
        spread(["a", "b"], 3)


def test_removing_units_drops_two_convs_each_and_keeps_shapes():
    graph = build("cifar_resnet", depth=20, in_shape=(1, 8, 8))
    units = residual_units(graph)
    thinner = without_units(graph, units, 0.5)
    assert weighted_depth(thinner) == weighted_depth(graph) - 2 * 4  # round(3.5) of 7
    assert thinner.shapes()["fc"] == graph.shapes()["fc"]
    assert len(thinner.nodes_of("gated_add")) == 9 - 4


def test_with_drop_sets_only_the_droppable_gates():
    graph = build("cifar_resnet", depth=20)
    units = residual_units(graph)
    dropped = with_drop(graph, units, 0.5)
    probs = {n: dropped.spec(n).params["drop_prob"] for n in dropped.nodes_of("gated_add")}
    assert {n for n, p in probs.items() if p == 0.5} == set(units)
    assert probs["layer2_0_add"] == probs["layer3_0_add"] == 0.0


RESNET = """
name = "res"
dataset = "digits"
[base]
model = "cifar_resnet"
options = {{ depth = 14, width = 4 }}
[train]
batch_size = 32
base_lr = 0.05
lr_policy = "cosine"
test_interval = 40
quiet = true
[growth]
max_stages = 0
stage_iters = 120
dropin_length = 1
[depth]
method = "{method}"
ratios = [0.25, 0.5, 0.75]
iters_per_ratio = 20
max_rise = 0.9
[width]
enabled = false
[verify]
iters = 40
tolerance = 0.5
backoff = 0
"""


def test_depth_dropout_search_end_to_end(tmp_path):
    path = tmp_path / "res.toml"
    path.write_text(RESNET.format(method="auto"))
    spec = load_spec(path, runs_dir=str(tmp_path / "runs"))
    summary = runner.Search(spec, echo=lambda s: None, quiet=True).run()
    out = tmp_path / "runs" / "res"
    (sweep,) = json.loads((out / "sweeps.json").read_text())["sweeps"]
    assert sweep["kind"] == "depth"
    assert [p["units_removed"] for p in sweep["points"]] == [1, 2, 3]  # of 4 droppable units
    assert all(0.0 <= p["full_error"] <= 1.0 for p in sweep["points"])
    estimate, check = sweep["estimate"], sweep["verification"]
    assert "no knee found" in sweep["finding"]  # max_rise 0.9: flat, so the bound is checked
    assert "McNemar" in sweep["finding"]  # each sub-network read on the plateau's samples
    assert estimate["ratio"] == 0.75 and estimate["units_removed"] == 3
    assert estimate["full_units"] == 6
    assert estimate["units"] == 6 - estimate["units_removed"]
    assert estimate["size"] == 14 - 2 * estimate["units_removed"]
    assert check["passed"] and summary["recommended"]["depth"] == estimate["size"]


def test_depth_dropout_on_a_plain_network_is_a_spec_error(tmp_path, capsys):
    path = tmp_path / "plain.toml"
    text = RESNET.format(method="depth_dropout").replace('"cifar_resnet"', '"convnet"')
    path.write_text(text.replace("options = { depth = 14, width = 4 }", ""))
    runs = tmp_path / "runs"
    assert main(["search", str(path), "--runs-dir", str(runs), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert 'method = "depth_dropout" needs a residual network' in err and err.count("\n") == 1
    assert not runs.exists()
