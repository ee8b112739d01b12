"""The display window: what a train record averages, carried across a resume.

A train record covers the ``display_interval`` steps before it. When a run stops between two
records, the steps already taken in the window travel in the checkpoint, so the first record
after the resume averages the same steps as the uninterrupted run's, to the bit.

>>> import torch
>>> w = DisplayWindow(torch.device("cpu"))
>>> w.add(torch.tensor(2.0), torch.tensor(3), 4)
>>> restored = DisplayWindow.from_state(w.state_dict(), torch.device("cpu"))
>>> restored.add(torch.tensor(1.0), torch.tensor(4), 4)
>>> float(restored.loss), float(restored.correct), restored.seen
(3.0, 7.0, 8)
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor


class DisplayWindow:
    """Summed step losses, correct answers and samples since the last train record.

    The sums stay on the device (no synchronisation per step); they are read once per record.
    """

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device)
        self.seen = 0
        self._earlier_s = 0.0  # seconds of this window spent before a resume
        self._start = time.perf_counter()

    def add(self, loss: Tensor, correct: Tensor, seen: int) -> None:
        self.loss += loss
        self.correct += correct
        self.seen += seen

    def elapsed(self) -> float:
        return self._earlier_s + time.perf_counter() - self._start

    def reset(self) -> None:
        self.loss.zero_()
        self.correct.zero_()
        self.seen, self._earlier_s, self._start = 0, 0.0, time.perf_counter()

    def state_dict(self) -> dict[str, Any]:
        # float32 sums become Python floats exactly, and come back as the same float32.
        return {
            "loss": float(self.loss),
            "correct": float(self.correct),
            "seen": self.seen,
            "elapsed_s": self.elapsed(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device) -> DisplayWindow:
        window = cls(device)
        window.loss.fill_(state["loss"])
        window.correct.fill_(state["correct"])
        window.seen = int(state["seen"])
        window._earlier_s = float(state["elapsed_s"])
        return window
