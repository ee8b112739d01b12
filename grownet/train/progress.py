"""A progress bar for long runs: which run it is, iteration, loss, the last evaluation's
accuracy (named by its split) and ETA (tqdm).

Several worker processes (``grownet study --workers``, ``grownet search --workers``) share one
terminal: each worker's bars keep to their own line (tqdm's ``position``, the worker's index
from :data:`WORKER_INDEX`), so two bars never interleave on one line.
"""

from __future__ import annotations

import math
import os
import sys

from tqdm import tqdm

WORKER_INDEX = "GROWNET_WORKER"
"""Set in each worker process of ``grownet study --workers N`` and ``grownet search --workers
N`` to the worker's index, 0 to N-1: the terminal line its progress bars use."""


def worker_index() -> int | None:
    """This process's worker index, or None outside workers."""
    value = os.environ.get(WORKER_INDEX, "")
    return int(value) if value.isdigit() else None


def bits(nats: float) -> float:
    """A loss in nats per token as bits per token (per character at the character level).

    >>> round(bits(1.0), 4)
    1.4427
    """
    return nats / math.log(2)


class Progress:
    """tqdm on stderr, named ``name``; silent when ``quiet`` (CI, tests, or a controller
    driving many runs)."""

    def __init__(
        self,
        *,
        total: int,
        initial: int = 0,
        quiet: bool = False,
        split: str = "test",
        name: str = "",
    ) -> None:
        self._split = split
        worker = worker_index()
        self._bar = (
            None
            if quiet
            else tqdm(
                total=total,
                initial=initial,
                desc=name if worker is None else f"[{worker}] {name}",
                unit="it",
                file=sys.stderr,
                dynamic_ncols=True,
                smoothing=0.1,
                # a worker's bar stays on the worker's own line and is cleared when done, so
                # its next run's bar takes the same line
                position=worker,
                leave=worker is None,
            )
        )
        self._postfix: dict[str, str] = {}
        self._done = initial

    def update(
        self,
        done: int,
        *,
        loss: float | None = None,
        accuracy: float | None = None,
        eval_loss: float | None = None,
    ) -> None:
        """Advance to ``done`` iterations, showing the last train ``loss`` and evaluation:
        its ``accuracy``, or for a language model its ``eval_loss`` in nats and bits."""
        if self._bar is None:
            return
        if loss is not None:
            self._postfix["loss"] = f"{loss:.4f}"
        if eval_loss is not None:
            self._postfix[f"{self._split}_loss"] = f"{eval_loss:.4f} ({bits(eval_loss):.3f} bits)"
        elif accuracy is not None:
            self._postfix[f"{self._split}_acc"] = f"{accuracy:.4f}"
        self._bar.update(done - self._done)
        self._done = done
        self._bar.set_postfix(self._postfix, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
