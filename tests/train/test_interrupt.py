"""Ctrl-C anywhere in a step, then a rerun: the same numbers and weights as a run never stopped.

Each case sends SIGINT to this process from inside one part of a step (the batch, the
optimizer, evaluation, the checkpoint), once (stop after the step) or twice (stop at once).
On the embedded digits, so every case is a few seconds.
"""

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from grownet.train import checkpoint
from grownet.train.config import TrainConfig
from grownet.train.trainer import Trainer


def digits_config(runs: Path, **overrides) -> TrainConfig:
    settings = {
        "name": "run", "runs_dir": str(runs), "model": "convnet", "dataset": "digits",
        "batch_size": 16, "base_lr": 0.05, "max_iter": 30, "test_interval": 10,
        "display_interval": 4, "device": "cpu", "quiet": True, "threads": 1, **overrides,
    }  # fmt: skip
    return TrainConfig.from_dict(settings)


def numbers(run: Path) -> list[tuple]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [(r["kind"], r["iteration"], r["loss"], r["accuracy"]) for r in map(json.loads, lines)]


def weights(run: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(run / "checkpoint.pt")["model"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    runs = tmp_path_factory.mktemp("full")
    Trainer(digits_config(runs, checkpoint_interval=10)).run()
    return numbers(runs / "run"), weights(runs / "run")


def interrupt_at(monkeypatch, owner, attr, *, call: int, signals: int) -> None:
    """Send ``signals`` SIGINTs to this process inside the ``call``-th call of owner.attr."""
    original = getattr(owner, attr)
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            for _ in range(signals):
                os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, attr, wrapped)


@pytest.mark.parametrize(
    ("where", "call", "signals", "stopped_at"),
    [
        ("next_batch", 7, 1, 7),  # mid display window: the window travels in the checkpoint
        ("next_batch", 1, 1, 1),
        ("step", 12, 1, 12),
        ("evaluate", 2, 1, 20),  # inside evaluation: it finishes, then the run stops
        ("save", 1, 1, 10),  # inside the periodic checkpoint at 10
        ("save", 2, 2, 10),  # twice inside the checkpoint at 20: the one at 10 stands
        ("evaluate", 2, 2, 10),  # twice: stops at once, resumes from the checkpoint at 10
        ("step", 5, 2, 0),  # twice before any checkpoint: a rerun starts again
    ],
)
def test_ctrl_c_then_rerun_is_exact(
    tmp_path, monkeypatch, uninterrupted, where, call, signals, stopped_at
):
    config = digits_config(tmp_path, checkpoint_interval=10)
    trainer = Trainer(config)
    owner = {
        "next_batch": trainer.train_loader,
        "step": trainer.optimizer,
        "evaluate": trainer,
        "save": checkpoint,
    }[where]
    interrupt_at(monkeypatch, owner, where, call=call, signals=signals)
    first = trainer.run()
    monkeypatch.undo()
    assert first.status == "interrupted"
    run = tmp_path / "run"
    if stopped_at:
        assert checkpoint.load(run / "checkpoint.pt")["iteration"] == stopped_at
    else:
        assert not (run / "checkpoint.pt").exists()
    second = Trainer(digits_config(tmp_path, checkpoint_interval=10)).run()
    assert second.status != "interrupted" and second.iterations == 30
    full_numbers, full_weights = uninterrupted
    assert numbers(run) == full_numbers
    for key, value in weights(run).items():
        assert torch.equal(value, full_weights[key]), key


def test_a_resumed_run_keeps_its_best_accuracy(tmp_path, monkeypatch):
    trainer = Trainer(digits_config(tmp_path))
    interrupt_at(monkeypatch, trainer, "evaluate", call=2, signals=1)
    trainer.run()
    monkeypatch.undo()
    result = Trainer(digits_config(tmp_path)).run()
    tests = [r for r in numbers(tmp_path / "run") if r[0] == "test"]
    assert result.best_test_accuracy == max(r[3] for r in tests)
