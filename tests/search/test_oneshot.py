"""One-shot sweeps and sweeps stopped early: same knee as the per-ratio sweep, honest records.

The case has a known knee: eight classes, each carried by one input feature, through a
32-unit hidden layer; below a quarter of the units (8) the classes no longer fit, and the
error climbs steeply. The per-ratio sweep (fine-tuned, stopping once the knee is confirmed)
and the one-shot sweep (trained once by the sandwich rule, BatchNorm re-estimated per ratio)
must read the same knee and recommend the same network.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from grownet.graph.executor import GraphNet
from grownet.graph.plan import Planner, Sandwich, StepPlan
from grownet.layers import kept_channels
from grownet.report.load import check_sweeps
from grownet.search import runner
from grownet.search.runs import Trained
from grownet.search.spec import SpecError, SweepSpec, load_spec
from grownet.search.sweeps import one_shot_sandwich, settled_by, thinned, with_width_dropout
from grownet.train.evaluation import recalibrate_batchnorm
from grownet.zoo import build

SPEC = """
name = "{mode}"
dataset = "npz:{path}"
[base]
model = "mlp"
options = {{ widths = [32] }}
[train]
batch_size = 32
base_lr = 0.05
lr_policy = "cosine"
test_interval = 100
display_interval = 50
threads = 1
quiet = true
[growth]
max_stages = 0
stage_iters = 300
dropin_length = 1
[depth]
enabled = false
[width]
ratios = [0.5, 0.25, 0.125, 0.0625, 0.03125]
iters_per_ratio = 100
mode = "{mode}"
[verify]
iters = 100
[final]
enabled = false
"""


@pytest.fixture(scope="module")
def both(tmp_path_factory, feature_classes):
    tmp = tmp_path_factory.mktemp("oneshot")
    rng = np.random.default_rng(0)
    (x, y), (xt, yt) = feature_classes(rng, 2000, 8, 16), feature_classes(rng, 500, 8, 16)
    np.savez(tmp / "known.npz", x=x, y=y, x_test=xt, y_test=yt)
    out = {}
    for mode in ("fine_tune", "one_shot"):
        spec_file = tmp / f"{mode}.toml"
        spec_file.write_text(SPEC.format(mode=mode, path=tmp / "known.npz"))
        spec = load_spec(spec_file, runs_dir=str(tmp / "runs"))
        summary = runner.Search(spec, echo=lambda line: None, quiet=True).run()
        sweeps = json.loads((tmp / "runs" / mode / "sweeps.json").read_text())
        out[mode] = summary, check_sweeps(sweeps)[0]
    return out


def test_one_shot_reads_the_knee_the_per_ratio_sweep_reads(both):
    (fine, fine_sweep), (one, one_sweep) = both["fine_tune"], both["one_shot"]
    assert fine_sweep["knee"]["ratio"] == one_sweep["knee"]["ratio"] == 0.5
    assert fine["recommended"]["widths"] == one["recommended"]["widths"] == {"fc1": 16, "out": 8}
    assert one_sweep["mode"] == "one_shot" and one_sweep["finding"].startswith("one-shot: ")
    # one training instead of one per ratio; its recalibration passes are counted too
    assert one_sweep["forward_flops"] > 0
    assert one["compute"]["forward_flops"] == one_sweep["forward_flops"]
    assert one["compute"]["iterations"] < fine["compute"]["iterations"]


def test_a_stopped_point_is_recorded_as_stopped_never_as_measured(both):
    summary, sweep = both["fine_tune"]
    stopped = [p for p in sweep["points"] if p["status"] == "stopped"]
    assert [p["ratio"] for p in stopped] == [0.0625, 0.03125]
    assert all(p["error"] is None and "settled" in p["stopped"] for p in stopped)
    assert "0.0625, 0.03125 stopped early, not trained" in sweep["finding"]
    assert summary["sweeps"][0]["stopped"] == 2
    # nothing was trained for them
    sweeps = Path(summary["report"]).parent / "sweeps"
    assert sorted(p.name for p in sweeps.glob("*/r*")) == ["r0.125", "r0.250", "r0.500"]


def test_settled_needs_two_ratios_in_a_row_off_the_plateau():
    full = Trained(None, {}, 0.98, (True,) * 980 + (False,) * 20, "converged", 1.0, None)
    settled = settled_by("width", full, SweepSpec(max_rise=0.01))
    on, off = {"ratio": 0.9, "error": 0.02}, {"ratio": 0.5, "error": 0.3}
    assert settled([on, off], [None, None]) == ""  # one off ratio may be an outlier
    assert "settled" in settled([on, off, {"ratio": 0.25, "error": 0.4}], [None] * 3)


def test_the_sandwich_trains_the_whole_the_smallest_and_draws_between():
    s = Sandwich(values=(1.0, 0.75, 0.5, 0.25), retain=("fc1_wd",))
    drawn = [s.value(i, seed=3) for i in range(400)]
    assert drawn[0::4] == [1.0] * 100 and drawn[1::4] == [0.25] * 100
    assert set(drawn[2::4] + drawn[3::4]) == {0.75, 0.5}
    assert drawn == [s.value(i, seed=3) for i in range(400)]  # a resumed run redraws them


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": (1.0,), "retain": ("a",)}, "whole network and one more"),
        ({"values": (1.0, 0.5)}, "needs width-dropout"),
    ],
)
def test_a_sandwich_refuses_what_it_cannot_train(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Sandwich(**kwargs)


def test_the_plan_sets_each_steps_width_and_the_executor_runs_it():
    graph = with_width_dropout(build("mlp", in_shape=(16,), num_classes=8, widths=[32]),
                               ["fc1"], 1.0)  # fmt: skip
    planner = Planner(graph, sandwich=Sandwich(values=(1.0, 0.25), retain=("fc1_wd",)))
    net = GraphNet(graph).eval()
    x = torch.randn(4, 16)
    narrow = GraphNet(with_width_dropout(build("mlp", in_shape=(16,), num_classes=8,
                                               widths=[32]), ["fc1"], 0.25)).eval()  # fmt: skip
    narrow.load_state_dict(net.state_dict())
    assert planner.draw(1).retain == {"fc1_wd": 0.25}
    assert torch.equal(net(x, planner.draw(1)), narrow(x))
    assert torch.equal(net(x, StepPlan()), net(x, planner.draw(0)))  # the whole network
    with pytest.raises(ValueError, match="not a width_dropout or norm node"):
        Planner(graph, sandwich=Sandwich(values=(1.0, 0.5), retain=("fc1",)))


@pytest.mark.parametrize("share", [0.75, 0.5, 0.25])
def test_a_one_shot_step_at_a_share_is_the_thinned_transformer(share):
    """A residual stream's one-shot sweep draws its norms' share with its zeroing, so a step
    at a share computes what the network narrowed to that share computes (the norms then
    read the kept features only)."""
    graph = build("gpt", depth=2, width=16, heads=2, in_shape=(8,), num_classes=11)
    torch.manual_seed(0)
    state = GraphNet(graph).state_dict()
    swept, sandwich = one_shot_sandwich(graph, ["tok"], (share,))
    assert {"ln1_1", "ln1_2", "ln2_1", "ln2_2", "ln_f"} <= set(sandwich.retain)
    net = GraphNet.with_state(swept, state).eval()
    start = Trained(graph, state, 1.0, (True,), "converged", 0.0, Path("."))
    keep = {n: kept_channels(16, share) for n in ("tok", "fc1_2", "fc2_2")}
    thin = GraphNet.with_state(*thinned(start, keep)).eval()
    x = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(1))
    plan = StepPlan(retain=dict.fromkeys(sandwich.retain, share))
    with torch.no_grad():
        torch.testing.assert_close(net(x, plan), thin(x), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(net(x, StepPlan()), thin(x), atol=1e-3)  # the whole differs


def test_recalibration_makes_batchnorm_statistics_the_plain_average():
    net = GraphNet(build("mlp", in_shape=(4,), num_classes=2, widths=[3]))
    batches = [(torch.randn(8, 4) * 3 + 1, torch.zeros(8, dtype=torch.long)) for _ in range(3)]
    seen = recalibrate_batchnorm(net, batches, StepPlan(), autocast=torch.no_grad)
    norm = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d))
    with torch.no_grad():
        means = [net.layers["fc1"](x).mean(0) for x, _ in batches]
    assert seen == 24 and torch.allclose(norm.running_mean, torch.stack(means).mean(0))
    assert norm.momentum == 0.1  # put back


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[width]\nmode = "once"', "mode must be one of"),
        ("[width]\nrecalibrate = 0", "recalibrate must be >= 1"),
        ("[width]\none_shot_iters = -1", "one_shot_iters must be >= 0"),
        ('[depth]\nmethod = "depth_dropout"\nmode = "one_shot"', "sweeps the DropIn ratio"),
    ],
)
def test_sweep_mode_mistakes_are_one_line(tmp_path, table, message):
    spec = tmp_path / "s.toml"
    spec.write_text('dataset = "digits"\n[base]\nmodel = "convnet"\n[growth]\n'
                    f'insert_after = ["relu1_1"]\n{table}\n')
    with pytest.raises(SpecError, match=message):
        load_spec(spec)
