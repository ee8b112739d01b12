"""Callbacks see every evaluation and the end of a run, and may stop it (pruning)."""

import json
import subprocess
import sys
from pathlib import Path

from grownet.train.callbacks import Callback, Stop
from grownet.train.config import TrainConfig
from grownet.train.trainer import Trainer


class Recorder(Callback):
    def __init__(self, stop_at: int | None = None) -> None:
        self.seen, self.ended, self.stop_at = [], [], stop_at

    def on_evaluate(self, trainer, iteration, accuracy):
        self.seen.append((iteration, accuracy))
        if iteration == self.stop_at:
            return Stop("pruned", f"pruned at iteration {iteration}")
        return None

    def on_end(self, trainer, result):
        self.ended.append(result.status)


def config(runs: Path) -> TrainConfig:
    return TrainConfig(name="run", runs_dir=str(runs), model="convnet", dataset="digits",
                       max_iter=30, test_interval=10, display_interval=5, batch_size=16,
                       device="cpu", quiet=True)  # fmt: skip


def test_a_callback_sees_every_evaluation_and_the_end(tmp_path):
    recorder = Recorder()
    result = Trainer(config(tmp_path), callbacks=[recorder]).run()
    tests = [r for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").open())
             if r["kind"] == "test"]  # fmt: skip
    assert recorder.seen == [(r["iteration"], r["accuracy"]) for r in tests]
    assert recorder.ended == [result.status]


def test_a_stop_ends_the_run_with_its_status_and_keeps_the_curve(tmp_path):
    recorder = Recorder(stop_at=20)
    result = Trainer(config(tmp_path), callbacks=[recorder]).run()
    assert (result.status, result.iterations) == ("pruned", 20)
    assert result.reason == "pruned at iteration 20"
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["status"] == "pruned" and recorder.ended == ["pruned"]
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if r["kind"] == "test"] == [10, 20]
    again = Trainer(config(tmp_path), callbacks=[Recorder()]).run()  # a rerun keeps the verdict
    assert again.status == "pruned" and again.iterations == 20


def test_the_trainer_imports_neither_the_report_nor_optuna():
    code = ("import sys, grownet.train.trainer; "
            "print(sorted(m for m in sys.modules if m.startswith(('grownet.report', 'optuna'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
