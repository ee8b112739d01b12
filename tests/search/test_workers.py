"""``grownet search --workers N``: the independent runs train in parallel, the answer unchanged.

With one thread per run (as the spec asks) a search in two worker processes trains exactly the
runs a one-process search trains, bit for bit: every stage, control, fold, sweep point, check
and final model, and so every decision.
"""

import functools
import json
import os
from pathlib import Path

import pytest

from grownet.search import runner
from grownet.search.spec import SpecError, load_spec
from grownet.search.workers import parallel, run_all

TABLES = """
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


def search(tiny_spec, name, workers, echo=lambda line: None):
    path = tiny_spec(name, TABLES)
    spec = load_spec(path, runs_dir=str(path.parent / "runs"))
    summary = runner.Search(spec, echo=echo, quiet=True, workers=workers).run()
    sweeps = json.loads((Path(spec.runs_dir) / name / "sweeps.json").read_text())
    return summary, sweeps


def test_two_workers_train_what_one_process_trains(tiny_spec):
    one, one_sweeps = search(tiny_spec, "one", 1)
    two, two_sweeps = search(tiny_spec, "two", 2)
    for key in ("growth_decision", "recommended", "full", "final", "compute"):
        assert json.dumps(one[key]).replace("/one/", "/two/") == json.dumps(two[key]), key
    assert json.dumps(one_sweeps).replace("/one/", "/two/") == json.dumps(two_sweeps)
    assert one["stages"] == two["stages"] == 2  # a stage and its control ran side by side
    # more workers than cores start as many as there are cores, the answer the same
    lines: list[str] = []
    many, _ = search(tiny_spec, "many", 10_000, lines.append)
    cores = os.cpu_count()
    assert f"--workers 10000: this machine has {cores} CPU cores; starting {cores}" in lines[0]
    assert json.dumps(many["recommended"]).replace("/many/", "/two/") == json.dumps(
        two["recommended"])  # one thread a run: the same numbers whatever the worker count


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


def test_each_worker_knows_its_index_for_its_progress_bars():
    from grownet.train.progress import worker_index

    with parallel(2):
        seen = run_all([functools.partial(worker_index) for _ in range(4)])
    assert set(seen) <= {0, 1} and worker_index() is None
