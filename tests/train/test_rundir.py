"""A run directory has one writer, its result files are replaced whole, and no run is destroyed
unless the user names it for that."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from grownet.cli import main
from grownet.errors import BadValueError, RunDirError
from grownet.train.config import TrainConfig
from grownet.train.rundir import RunDir, check_run_name
from grownet.train.trainer import Trainer

HOLD = textwrap.dedent(
    """
    import sys, time
    from grownet.train.rundir import RunDir
    with RunDir(sys.argv[1]).lock():
        print("locked", flush=True)
        time.sleep(60)
    """
)


def hold_lock(path: Path) -> subprocess.Popen:
    """Another process that holds the run directory's lock until killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    holder = hold_lock(tmp_path / "run")
    try:
        expected = f"another grownet process \\(PID {holder.pid}\\)"
        with pytest.raises(RunDirError, match=expected), RunDir(tmp_path / "run").lock():
            pass
    finally:
        holder.kill()
        holder.wait()


def test_sigkill_leaves_no_stale_lock(tmp_path):
    holder = hold_lock(tmp_path / "run")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with RunDir(tmp_path / "run").lock():  # the OS released it with the process
        pass


def test_the_same_process_cannot_write_one_run_twice(tmp_path):
    run = RunDir(tmp_path / "run")
    with run.lock(), pytest.raises(RunDirError, match="being written"), RunDir(run.path).lock():
        pass


def test_grownet_train_on_a_held_run_is_one_line(tmp_path, capsys):
    holder = hold_lock(tmp_path / "busy")
    try:
        argv = ["train", "--model", "convnet", "--dataset", "digits", "--max-iter", "2",
                "--runs-dir", str(tmp_path), "--name", "busy", "--quiet"]  # fmt: skip
        assert main(argv) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert f"PID {holder.pid}" in err and err.count("\n") == 1
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == [".lock"]


def test_truncating_metrics_survives_a_crash_in_the_rewrite(tmp_path, monkeypatch):
    run = RunDir(tmp_path).create()
    for i in range(1, 6):
        run.append_metrics({"kind": "train", "iteration": i})
    before = run.file("metrics.jsonl").read_text()

    def crash(*args):
        raise OSError("killed mid-rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        run.truncate_metrics(3)
    monkeypatch.undo()
    assert run.file("metrics.jsonl").read_text() == before  # nothing lost
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]  # no temp left
    run.truncate_metrics(3)
    assert [r["iteration"] for r in run.read_metrics()] == [1, 2, 3]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../x", "leaves the runs directory"),
        ("a/../../x", "leaves the runs directory"),
        ("/tmp/x", "absolute path"),
        ("~/x", "absolute path"),
        ("./x", "not a plain relative path"),
    ],
)
def test_names_stay_inside_the_runs_directory(name, message):
    with pytest.raises(BadValueError, match=message):
        check_run_name(name)


def digits(runs: Path, **overrides) -> TrainConfig:
    settings = {"name": "run", "runs_dir": str(runs), "model": "convnet", "dataset": "digits",
                "max_iter": 4, "test_interval": 2, "display_interval": 2, "batch_size": 16,
                "device": "cpu", "quiet": True, **overrides}  # fmt: skip
    return TrainConfig.from_dict(settings)


def files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


def test_no_resume_never_destroys_a_finished_run(tmp_path):
    Trainer(digits(tmp_path)).run()
    before = files(tmp_path / "run")
    with pytest.raises(RunDirError, match=r"holds a finished run.*another --name, or --overwrite"):
        Trainer(digits(tmp_path)).run(resume=False)
    assert files(tmp_path / "run") == before


def test_overwrite_replaces_the_named_run(tmp_path):
    Trainer(digits(tmp_path)).run()
    (tmp_path / "run" / "stray.txt").write_text("x")
    result = Trainer(digits(tmp_path, max_iter=2, seed=3)).run(overwrite=True)
    assert result.iterations == 2 and not (tmp_path / "run" / "stray.txt").exists()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["seed"] == 3


def test_a_run_killed_before_its_first_checkpoint_restarts(tmp_path):
    run = RunDir(tmp_path / "run").create()
    run.write_json("config.json", digits(tmp_path).to_dict())
    run.append_metrics({"kind": "train", "iteration": 2, "loss": 9.0})
    result = Trainer(digits(tmp_path)).run()
    assert result.iterations == 4
    assert all(r["loss"] != 9.0 for r in run.read_metrics())
    with pytest.raises(RunDirError, match="other settings and no checkpoint"):
        run.file("checkpoint.pt").unlink()
        run.file("result.json").unlink()
        Trainer(digits(tmp_path, seed=5)).run()


@pytest.mark.parametrize(
    ("change", "extend", "message"),
    [
        ({"max_iter": 2}, False, "is at iteration 4 already"),
        ({"max_iter": 8}, False, "pass --extend with a larger --max-iter"),
        ({"threads": 1}, False, r"change results \(threads None -> 1\)"),
        ({"compile": True}, False, "change results"),
        ({"max_iter": 8, "lr_policy": "cosine"}, True, "change results"),
    ],
)
def test_resume_refuses_what_would_change_results(tmp_path, change, extend, message):
    Trainer(digits(tmp_path)).run()
    before = files(tmp_path / "run")
    with pytest.raises(BadValueError, match=message):
        Trainer(digits(tmp_path, **change)).run(extend=extend)
    assert files(tmp_path / "run") == before


def test_extend_refuses_a_schedule_of_max_iter(tmp_path):
    Trainer(digits(tmp_path, lr_policy="cosine")).run()
    with pytest.raises(BadValueError, match="cosine schedule, a function of max_iter"):
        Trainer(digits(tmp_path, lr_policy="cosine", max_iter=8)).run(extend=True)


def test_a_finished_run_rerun_returns_its_result(tmp_path):
    first = Trainer(digits(tmp_path)).run()
    time.sleep(0.01)
    again = Trainer(digits(tmp_path, quiet=False)).run()  # a result-neutral change
    assert again == first
