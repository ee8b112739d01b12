"""A growth search on a residual network: the width sweep thins each ResNet stage (a coupled
channel group) as one unit, estimates its width and verifies it (tiny iterations on digits)."""

import json

from grownet.graph import NetGraph
from grownet.report.load import check_sweeps
from grownet.search import runner
from grownet.search.spec import load_spec

SPEC = """
name = "coupled"
dataset = "digits"
[base]
model = "cifar_resnet"
options = { depth = 8, shortcut = "B", width = 8 }
[train]
batch_size = 32
base_lr = 0.05
lr_policy = "cosine"
test_interval = 20
display_interval = 30
quiet = true
[growth]
max_stages = 0
stage_iters = 20
dropin_length = 1
[depth]
enabled = false
[width]
ratios = [0.5, 0.25]
iters_per_ratio = 5
per_layer = false
max_rise = 0.9
[verify]
iters = 5
tolerance = 0.99
backoff = 0
"""


def test_search_sweeps_each_stage_as_one_unit(tmp_path):
    path = tmp_path / "coupled.toml"
    path.write_text(SPEC)
    spec = load_spec(path, runs_dir=str(tmp_path / "runs"))
    runner.Search(spec, echo=lambda s: None, quiet=True).run()
    out = tmp_path / "runs" / "coupled"
    sweeps = check_sweeps(json.loads((out / "sweeps.json").read_text()))
    (width,) = [s for s in sweeps if s["kind"] == "width"]
    stages = [unit for unit in width["units"] if len(unit) > 1]
    assert stages == [
        ["conv1", "layer1_0_conv2"],
        ["layer2_0_conv2", "layer2_0_downsample_0"],
        ["layer3_0_conv2", "layer3_0_downsample_0"],
    ]
    estimate = width["estimate"]
    keep = estimate["channels"]
    assert keep["layer2_0_conv2"] == keep["layer2_0_downsample_0"] < 16
    # each stage's channels are counted once: 3 stages and the 3 first convs of the blocks
    assert estimate["full_size"] == (8 + 16 + 32) * 2
    assert width["verification"]["passed"]  # tolerance 0.99: any finished run passes
    graph = NetGraph.from_json(out / "graph.json")  # the recommendation: thinned stages
    shapes = graph.shapes()
    assert shapes["layer2_0_add"][0] == keep["layer2_0_conv2"]
    assert shapes["layer3_0_add"][0] == keep["layer3_0_conv2"] < 32
