"""``grownet reproduce`` as an Optuna grid study on a tiny digits recipe: resume without
duplicates, ``--case``, ``--scale quick`` and its labels, ``--list``."""

import html
import json
import threading
from pathlib import Path

import optuna
import pytest

from grownet.cli import main
from grownet.files import exclusive_lock
from grownet.study.storage import trial_lock

TINY = """
paper = "tiny: a ConvNet on digits"
notes = "written by tests/reproduce/test_grid.py"
tolerance = 50
[train]
model = "convnet"
dataset = "digits"
max_iter = 100
test_interval = 50
batch_size = 32
seed = 1
threads = 1
[train.model_options]
widths = [4]
[[case]]
name = "small"
paper = { metric = "accuracy", value = 60, approx = true, average_last = 2 }
[[case]]
name = "wide"
model_options = { widths = [8] }
paper = { metric = "converged", value = true }
[[case]]
name = "cifar"
dataset = "cifar10"
"""
QUICK = "quick: not the paper's budget"


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def reproduce(recipe, tmp_path, *flags):
    argv = ["reproduce", str(recipe), "--runs-dir", str(tmp_path / "runs"), "--quiet",
            "--data-dir", str(tmp_path / "data"), *flags]  # fmt: skip
    assert main(argv) == 0


def trials(folder: Path) -> list[tuple[str, str]]:
    """(case, state) of every trial of every study in the recipe directory's storage."""
    storage = f"sqlite:///{folder / 'study.db'}"
    return [
        (t.params.get("case"), t.state.name)
        for name in optuna.get_all_study_names(storage)
        for t in optuna.load_study(study_name=name, storage=storage).trials
    ]


def test_a_rerun_continues_the_grid_and_trains_nothing_twice(recipe, tmp_path, capsys):
    reproduce(recipe, tmp_path, "--case", "small")
    folder = tmp_path / "runs" / "tiny"
    assert trials(folder) == [("small", "COMPLETE")]
    stamp = (folder / "small" / "result.json").stat().st_mtime_ns
    reproduce(recipe, tmp_path)  # every case: "small" is found finished, "wide" trains
    reproduce(recipe, tmp_path)  # and again: nothing left to do
    assert (folder / "small" / "result.json").stat().st_mtime_ns == stamp
    done = trials(folder)
    assert sorted(done) == [("small", "COMPLETE"), ("small", "COMPLETE"), ("wide", "COMPLETE")]
    full = [t for t in done if t[0] == "wide"]
    assert len(full) == 1  # one trial per case in the all-cases study, however many reruns
    out = capsys.readouterr().out
    assert "not run: cifar10 missing" in out and "continuing the study" in out
    summary = json.loads((folder / "summary.json").read_text())
    rows = {c["case"]: c for c in summary["cases"]}
    assert rows["cifar"]["verdict"] == "not run: cifar10 missing"
    assert rows["small"]["verdict"] in ("reproduced", "not reproduced")
    assert rows["small"]["paper"] == "~60.00 %" and rows["small"]["difference"].endswith(" pp")
    page = (folder / "report.html").read_text()
    assert "Paper vs measured: tiny<" in page and f"<code>{recipe}</code>" in page
    argv = ["reproduce", str(recipe), "--runs-dir", str(tmp_path / "runs"), "--max-iter", "30"]
    assert main(argv) == 2  # refused before any trial: the case directories hold other budgets
    assert "holds a run with other settings (max_iter)" in capsys.readouterr().err


def test_two_case_selections_train_side_by_side(recipe, tmp_path):
    # Every selection's study numbers its trials from 0 in the one directory: while another
    # selection's trial 0 runs (its lock held), this one must not wait for it.
    folder = tmp_path / "runs" / "tiny"
    with exclusive_lock(folder / trial_lock("tiny [small]", 0)):
        worker = threading.Thread(target=reproduce, args=(recipe, tmp_path, "--case", "wide"))
        worker.start()
        worker.join(timeout=300)
        waited = worker.is_alive()
    worker.join()
    assert not waited, "--case wide waited for another selection's trial lock"
    assert trials(folder) == [("wide", "COMPLETE")]


def test_quick_runs_apart_and_labels_every_number(recipe, tmp_path, capsys):
    reproduce(recipe, tmp_path, "--scale", "quick", "--workers", "2")
    folder = tmp_path / "runs" / "tiny-quick"
    assert not (tmp_path / "runs" / "tiny").exists()
    config = json.loads((folder / "small" / "config.json").read_text())
    assert (config["max_iter"], config["test_interval"]) == (1, 1)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["scale"] == "quick" and QUICK in summary["scale_note"]
    for case in summary["cases"]:
        if case["measured_value"] is not None:
            assert QUICK in case["measured"] and case["note"] == QUICK
            assert case["verdict"] == "not run: quick scale"
    text = (folder / "summary.txt").read_text()
    assert text.count(QUICK) >= 3 and QUICK in capsys.readouterr().out
    assert html.escape(QUICK) in (folder / "report.html").read_text()
    assert [c["case"] for c in summary["cases"] if c["iterations"]] == ["small", "wide"]


def test_list_names_every_recipe_its_data_and_results(tmp_path, capsys, monkeypatch):
    mnist = tmp_path / "data" / "MNIST" / "raw"
    mnist.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte.gz"):  # fmt: skip
        (mnist / name).write_bytes(b"")  # presence is told from names: nothing is read
    done = tmp_path / "runs" / "dropin_mnist_lenet" / "lenet10"
    done.mkdir(parents=True)
    (done / "result.json").write_text(json.dumps({"status": "did not converge",
                                                  "iterations": 10000}))  # fmt: skip
    going = tmp_path / "runs" / "dropin_mnist_lenet" / "lenet10-dropin-1000"
    going.mkdir()
    (going / "metrics.jsonl").write_text('{"iteration": 4700}\n{"iteration": 4711}\n')
    monkeypatch.delenv("GROWNET_DATA", raising=False)
    assert main(["reproduce", "--list", "--runs-dir", str(tmp_path / "runs"),
                 "--data-dir", str(tmp_path / "data")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "data mnist: present" in out and "data cifar10: MISSING data_batch_1" in out
    assert "data imagenet: MISSING train/, val/" in out
    assert "full: did not converge, 10,000 it" in out
    assert "lenet10-dropin-1000  full: not finished, iteration 4,711" in out
    from grownet.shipped import shipped_names

    assert all(f"\n{name}  (" in "\n" + out for name in shipped_names("recipe"))
