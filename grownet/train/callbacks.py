"""What code above the trainer may do while a run trains, without the trainer knowing it.

The trainer calls each :class:`Callback` after every evaluation, with the iteration and the
accuracy it just measured (test accuracy, or validation accuracy with ``val_size``), and once
when the run ends. A callback may end a run early by returning a :class:`Stop`: Optuna's
pruning is such a callback, owned by the study code; writing ``report.html`` at the end is
another, owned by the commands that want one. So ``grownet.train`` imports neither Optuna nor
the report.

Under DDP every rank calls its callbacks' ``on_evaluate`` with the same numbers; ``on_end``
runs on rank 0 only, which alone writes the run directory.

>>> class StopAt90(Callback):
...     def on_evaluate(self, trainer, iteration, accuracy):
...         if accuracy >= 0.9:
...             return Stop("converged", f"90 % reached at iteration {iteration}")
...         return None
>>> StopAt90().on_evaluate(None, 200, 0.93)
Stop(status='converged', reason='90 % reached at iteration 200')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from grownet.train.config import TrainConfig
from grownet.train.rundir import RunDir
from grownet.train.verdict import TrainResult


class Run(Protocol):
    """What a callback may read of the run it watches (the trainer is one): the callback
    layer knows this much of the trainer and imports nothing of it."""

    config: TrainConfig
    run_dir: RunDir
    iteration: int


@dataclass(frozen=True)
class Stop:
    """Ends the run now with this status (e.g. ``"pruned"``) and reason, checkpoint saved."""

    status: str
    reason: str


class Callback:
    """Hooks into a training run; every method does nothing unless overridden."""

    def on_evaluate(self, trainer: Run, iteration: int, accuracy: float) -> Stop | None:
        """After each evaluation; return a :class:`Stop` to end the run here."""
        return None

    def on_end(self, trainer: Run, result: TrainResult) -> None:
        """Once, after ``result.json`` is written (rank 0 only)."""
