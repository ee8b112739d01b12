"""``grownet search --workers N``: the independent runs train in parallel, the answer unchanged.

With one thread per run (as the spec asks) a search in two worker processes trains exactly the
runs a one-process search trains, bit for bit: every stage, control, fold, sweep point, check
and final model, and so every decision.
"""

import functools
import json

import numpy as np
import pytest

from grownet.search import runner
from grownet.search.spec import SpecError, load_spec
from grownet.search.workers import parallel, run_all

SPEC = """
name = "{name}"
dataset = "npz:{path}"
[base]
model = "mlp"
options = {{ widths = [16] }}
[train]
batch_size = 32
base_lr = 0.05
lr_policy = "cosine"
test_interval = 40
display_interval = 20
threads = 1
quiet = true
[growth]
insert_after = ["relu1"]
stage_iters = 40
dropin_length = 20
max_stages = 1
[validate]
folds = 2
[width]
ratios = [0.5, 0.25]
iters_per_ratio = 20
[verify]
iters = 20
[final]
iters = 40
"""


def search(tmp, name, workers):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    x = rng.normal(0.0, 0.5, (400, 8)).astype(np.float32)
    x[np.arange(400), y] += 2.0
    np.savez(tmp / "d.npz", x=x[:300], y=y[:300], x_test=x[300:], y_test=y[300:])
    (tmp / f"{name}.toml").write_text(SPEC.format(name=name, path=tmp / "d.npz"))
    spec = load_spec(tmp / f"{name}.toml", runs_dir=str(tmp / "runs"))
    summary = runner.Search(spec, echo=lambda line: None, quiet=True, workers=workers).run()
    sweeps = json.loads((tmp / "runs" / name / "sweeps.json").read_text())
    return summary, sweeps


def test_two_workers_train_what_one_process_trains(tmp_path):
    one, one_sweeps = search(tmp_path, "one", 1)
    two, two_sweeps = search(tmp_path, "two", 2)
    for key in ("growth_decision", "recommended", "full", "final", "compute"):
        assert json.dumps(one[key]).replace("/one/", "/two/") == json.dumps(two[key]), key
    assert json.dumps(one_sweeps).replace("/one/", "/two/") == json.dumps(two_sweeps)
    assert one["stages"] == two["stages"] == 2  # a stage and its control ran side by side


def test_a_group_runs_in_order_outside_and_inside_parallel():
    assert run_all([int, float]) == [0, 0.0]
    with parallel(2):
        assert run_all([int, float, str]) == [0, 0.0, ""]
        with pytest.raises(ValueError, match="invalid literal"):  # raised after both ended
            run_all([int, functools.partial(int, "x")])
    with pytest.raises(ValueError, match="workers must be an int >= 1, got 0"), parallel(0):
        pass


def test_a_bad_worker_count_is_one_line():
    spec = load_spec("search/digits.toml")
    with pytest.raises(SpecError, match="--workers must be a whole number >= 1, got -1"):
        runner.Search(spec, workers=-1)
