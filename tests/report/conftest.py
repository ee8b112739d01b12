"""Run directories for the report tests: two real trainings on the embedded digits set.

``demo/plain`` is a ConvNet trained for 40 iterations; ``demo/grown`` is the same net grown by
one DropIn-joined conv (so it has a DropIn ratio q and a gated branch), beside which the files
later stages will write are laid by hand: ``stages.jsonl``, ``sweeps.json``, ``bench*.json``,
``study.db`` (Optuna) and ``graph_before.json``. ``demo/`` is a recipe directory:
``grownet reproduce --summary-only`` writes its ``summary.json`` and its report. Built once
per session (about five seconds), then only read.
"""

import json
import shutil
from pathlib import Path

import pytest

from grownet.cli import main
from grownet.graph import LayerSpec
from grownet.graph.surgery import insert_after
from grownet.report.callback import WriteReport
from grownet.train import TrainConfig, Trainer
from grownet.zoo import convnet

RECIPE = """
paper = "Report check: a ConvNet on digits, plain and grown by one DropIn-joined conv."
notes = "Written by tests/report/conftest.py."
[train]
model = "convnet"
dataset = "digits"
[[case]]
name = "plain"
expect = "converged"
[[case]]
name = "grown"
expect = "converged"
"""

STAGES = [
    {"stage": 0, "depth": 3, "params": 5178, "flops": 81920, "test_accuracy": 0.71,
     "wall_time_s": 1.0},
    {"stage": 1, "depth": 4, "params": 7498, "flops": 118784, "test_accuracy": 0.86,
     "wall_time_s": 2.5, "action": "insert after relu1_1"},
    {"stage": 2, "depth": 5, "params": 16778, "flops": 155648, "test_accuracy": 0.88,
     "wall_time_s": 4.0},
]  # fmt: skip

SWEEPS = {
    "sweeps": [
        {
            "kind": "width",
            "layer": "conv1_1",
            "points": [{"ratio": r, "error": e} for r, e in
                       [(0.9, 0.10), (0.7, 0.11), (0.5, 0.12), (0.3, 0.2), (0.1, 0.6)]],
            "knee": {"ratio": 0.5, "error": 0.12},
            "estimate": {"ratio": 0.5, "size": 8, "full_size": 16},
            "verification": {"full_accuracy": 0.9, "reduced_accuracy": 0.88, "passed": True},
        },
        {
            "kind": "dropin",
            "layer": None,
            "points": [{"ratio": 0.0, "error": 0.1}, {"ratio": 0.5, "error": 0.3}],
            "knee": None,
            "estimate": None,
            "verification": None,
        },
    ]
}  # fmt: skip

BENCH = {
    "benchmark": "depth_dropout",
    "model": "resnet56",
    "rows": [
        {"variant": "baseline", "ratio": 0.0, "mode": "-", "forward_ms": 30.0,
         "backward_ms": 60.0, "total_ms": 90.0, "saving": 0.0, "theory_saving": 0.0},
        *({"variant": f"p={p} {m}", "ratio": p, "mode": m, "forward_ms": f, "backward_ms": 2 * f,
           "total_ms": 3 * f, "saving": 1 - f / 30, "theory_saving": t,
           "paper_theory_saving": t}
          for p, t in ((0.25, 0.123), (0.5, 0.346), (0.75, 0.567))
          for m, f in (("skip", 30 * (1 - t) + 1), ("mask", 31.0))),
    ],
    "findings": ["1x1 shortcuts at p=0 add 3.0 ms = 10.0% of a baseline step"],
    "provenance": {"device": "cpu", "device_name": "test CPU", "threads": 2, "torch": "x"},
}  # fmt: skip

EXECUTOR_BENCH = {
    "benchmark": "executor_overhead",
    "config": {"model": "resnet56", "batch": 64},
    "graph_ms": 101.0,
    "hand_ms": 100.0,
    "ratio": 1.01,
}


def _train(runs: Path, name: str, graph=None) -> Path:
    config = TrainConfig(model="convnet", dataset="digits", max_iter=40, test_interval=20,
                         display_interval=10, batch_size=32, base_lr=0.1, quiet=True,
                         runs_dir=str(runs), name=name)  # fmt: skip
    return Path(Trainer(config, graph=graph, callbacks=[WriteReport()]).run().run_dir)


def _study(db: Path) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{db}"
    single = optuna.create_study(
        study_name="search", storage=storage, sampler=optuna.samplers.TPESampler(seed=0)
    )
    single.optimize(lambda t: (t.suggest_float("lr", 0.01, 1, log=True) - 0.1) ** 2
                    + 0.01 * t.suggest_int("depth", 2, 8), n_trials=10)  # fmt: skip
    multi = optuna.create_study(
        study_name="pareto", storage=storage, directions=["minimize", "minimize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
    )  # fmt: skip
    multi.optimize(
        lambda t: (
            1 / t.suggest_int("width", 1, 32),
            t.params["width"] * t.suggest_float("scale", 0.5, 2),
        ),
        n_trials=10,
    )


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    """The recipe directory ``runs/demo`` holding ``plain`` and ``grown``."""
    root = tmp_path_factory.mktemp("report")
    runs = root / "runs"
    _train(runs, "demo/plain")
    before = convnet()
    conv = LayerSpec("conv", out_channels=16, kernel_size=3, padding=1)
    dropin = LayerSpec("dropin", mode="gradual", length=30)
    grown = _train(runs, "demo/grown", insert_after(before, "relu1_1", [("conv1_2", conv)],
                                                    dropin=dropin))  # fmt: skip
    before.to_json(grown / "graph_before.json")
    (grown / "stages.jsonl").write_text("".join(json.dumps(s) + "\n" for s in STAGES))
    (grown / "sweeps.json").write_text(json.dumps(SWEEPS))
    (grown / "bench.json").write_text(json.dumps(BENCH))
    (grown / "bench-executor.json").write_text(json.dumps(EXECUTOR_BENCH))
    _study(grown / "study.db")
    recipe = root / "demo.toml"
    recipe.write_text(RECIPE)
    assert main(["reproduce", str(recipe), "--summary-only", "--runs-dir", str(runs)]) == 0
    return runs / "demo"


@pytest.fixture
def copy_of(tmp_path):
    """A writable copy of a session run directory, for tests that damage it."""

    def copy(path: Path) -> Path:
        return Path(shutil.copytree(path, tmp_path / path.name))

    return copy


# A growth search's directory, laid by hand as `grownet search` writes it, under the validation
# protocol ("new": decisions on 500 validation samples, test read once on 1,000) or from before
# it ("old": decisions on the 1,000 test samples, none of the protocol's fields).
N_VAL, N_TEST = 500, 1000
SEARCH_STAGES = [
    {"stage": 0, "depth": 3, "params": 5000, "flops": 80000, "test_accuracy": 0.80,
     "wall_time_s": 10.0, "stage_time_s": 10.0},
    {"stage": 1, "depth": 4, "params": 7000, "flops": 110000, "test_accuracy": 0.90,
     "wall_time_s": 25.0, "stage_time_s": 15.0, "decision": "depth pays; keep stage 1"},
]  # fmt: skip
INTERVAL = {"low_ratio": 0.25, "high_ratio": 0.5, "low": 0.25, "high": 0.5, "level": 0.9,
            "replicates": 400, "paired": True, "shares": {"0.25": 0.3, "0.5": 0.7},
            "low_channels": {"conv1": 4}, "high_channels": {"conv1": 8}}  # fmt: skip
# A depth sweep's ratios are the share taken out: low_ratio (the smaller network) is the larger.
DEPTH_INTERVAL = {"low_ratio": 0.5, "high_ratio": 0.25, "level": 0.9, "replicates": 400,
                  "paired": False, "low_size": 3, "high_size": 4}  # fmt: skip
CHECK = {"full_accuracy": 0.9, "reduced_accuracy": 0.89, "passed": True}
CLOSE_CALL = {"split": "val", "n": N_VAL, "margin_samples": 1.0}  # the protocol's check keys


def _network(accuracy: float, test: float | None, run: str) -> dict:
    entry = {"depth": 4, "params": 7000, "flops": 110000, "accuracy": accuracy, "run": run}
    return entry | ({"split": "val", "test_accuracy": test, "n_test": N_TEST} if test else {})


def lay_search(path: Path, *, new: bool) -> Path:
    path.mkdir(parents=True)
    val = {"split": "val", "n": N_VAL} if new else {}
    stages = [s | val for s in SEARCH_STAGES]
    tests = [{"kind": "test", "iteration": 10 * (s["stage"] + 1), "accuracy": s["test_accuracy"],
              "wall_time_s": s["stage_time_s"], "stage": s["stage"]} for s in stages]  # fmt: skip
    (path / "stages.jsonl").write_text("".join(json.dumps(s) + "\n" for s in stages))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tests))
    (path / "stages" / "stage_0").mkdir(parents=True)
    sizes = {"train": 1000, "val": N_VAL, "test": N_TEST} if new else {"train": 1500, "val": 0,
                                                                       "test": N_TEST}  # fmt: skip
    (path / "stages" / "stage_0" / "dataset.json").write_text(json.dumps({"sizes": sizes}))
    points = [{"ratio": r, "error": e} for r, e in [(0.25, 0.11), (0.5, 0.10), (0.75, 0.10)]]
    width = {"kind": "width", "layer": "conv1", "points": points,
             "knee": {"ratio": 0.5, "error": 0.10}, "plateau": 0.1, "max_rise": 0.01,
             "estimate": {"ratio": 0.5, "size": 8, "full_size": 16},
             "verification": CHECK | (CLOSE_CALL if new else {})}  # fmt: skip
    depth = {"kind": "dropin", "layer": None, "points": points, "knee": None, "estimate": None,
             "verification": None}  # fmt: skip
    if new:
        width["interval"], depth["interval"] = INTERVAL, DEPTH_INTERVAL
        # a point the sweep stopped early: recorded, never measured
        depth["points"] = [*points, {"ratio": 0.9, "error": None, "status": "stopped",
                                     "stopped": "ratios 0.5 and 0.75 are both off"}]  # fmt: skip
    (path / "sweeps.json").write_text(json.dumps({"sweeps": [width, depth]}))
    summary = {"chosen_stage": 1, "growth_decision": "depth pays; keep stage 1",
               "recommended": {**_network(0.89, 0.87 if new else None, "s/verify/width"),
                               "widths": {"conv1": 8, "fc": 10}},
               "full": _network(0.90, 0.88 if new else None, "s/verify/full-stage1"),
               "best": _network(0.905, None, "s/stages/stage_1")}  # fmt: skip
    if new:
        starts = [("inherited", 0.91, 0.89), ("scratch", 0.90, 0.895)]
        final = [{"start": start, "val_accuracy": v, "split": "val", "test_accuracy": t,
                  "n_test": N_TEST, "status": "converged", "run": f"s/final/{start}"}
                 for start, v, t in starts]  # fmt: skip
        summary |= {
            "protocol": {"decisions": "val", "n_val": N_VAL, "n_test": N_TEST, "val_size": N_VAL,
                         "held_out": "held out of the training set, stratified, seed 0"},
            "n_val": N_VAL, "n_test": N_TEST, "width_interval": {"conv1": [4, 8]},
            "depth_interval": [3, 4], "train_time_s": 42.0,
            "compute": {"train_flops": 1.5e12, "forward_flops": 0, "iterations": 4_200,
                        "runs": 7, "final_flops": 2e11},
            "final": {"iters": 600, "runs": final, "chosen": final[0], "model": "s/model"},
            "sweeps": [{"kind": "width", "layer": "conv1", "interval": INTERVAL,
                        "close_call": "a close call: 1.0 sample(s) above the threshold"}],
        }  # fmt: skip
        answer = {
            "status": "search finished",
            "final_test_accuracy": 0.89,
            "best_test_accuracy": 0.89,
        }  # the final model's test accuracy, twice
        (path / "result.json").write_text(json.dumps(answer))
    else:
        summary["n_test"] = N_TEST
    if new:  # the final model, as a user takes it away
        (path / "model").mkdir()
        (path / "model" / "config.json").write_text(json.dumps({"chosen_on": "val"}))
    (path / "search_summary.json").write_text(json.dumps(summary))
    (path / "search.json").write_text(json.dumps({"depth": {"max_rise": 0.02}}))
    (path / "summary.txt").write_text(f"search s ({'new' if new else 'old'}): depth pays\n")
    return path


@pytest.fixture(scope="session")
def searches(tmp_path_factory) -> dict[str, Path]:
    """``{"new": .../new/s, "old": .../old/s}``: the same search under and before the protocol."""
    root = tmp_path_factory.mktemp("searches")
    return {kind: lay_search(root / kind / "s", new=kind == "new") for kind in ("new", "old")}
