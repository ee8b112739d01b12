"""Side-by-side timing: interleaved rounds, warm-up excluded, medians reported.

Timings on a shared machine are noisy, so competing variants are timed in alternating rounds
within one process and compared by their medians. On CUDA the clock is a pair of CUDA events on
the device's stream, read after synchronising, so asynchronous kernels are counted where they
run rather than when Python launched them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock:
    """Marks within one piece of work and the seconds between them.

    CUDA: a timing event recorded on the device's current stream at each mark, read once at
    the end. CPU: ``time.perf_counter``.

    Example:
        >>> clock = StepClock(torch.device("cpu"))
        >>> clock.start(); clock.mark(); clock.mark()
        >>> len(clock.intervals())
        2
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._marks: list[Any] = []

    def start(self) -> None:
        self._marks = []
        self.mark()

    def mark(self) -> None:
        if self.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))
            self._marks.append(event)
        else:
            self._marks.append(time.perf_counter())

    def intervals(self) -> list[float]:
        """Seconds between consecutive marks (waits for the device to reach the last one)."""
        if self.device.type == "cuda":
            self._marks[-1].synchronize()
            return [a.elapsed_time(b) / 1e3 for a, b in pairwise(self._marks)]
        return [b - a for a, b in pairwise(self._marks)]


def time_call(fn: Callable[[], Any], *, iters: int, device: torch.device) -> float:
    """Mean seconds per call of ``fn`` over ``iters`` calls."""
    sync(device)  # earlier work is not this call's
    clock = StepClock(device)
    clock.start()
    for _ in range(iters):
        fn()
    clock.mark()
    return clock.intervals()[0] / iters


def interleaved(
    variants: dict[str, Callable[[], Any]],
    *,
    rounds: int,
    iters: int,
    warmup: int,
    device: torch.device,
) -> dict[str, list[float]]:
    """Per-round seconds per call for each variant, the variants alternating every round."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        # Alternate the order so neither variant always runs right after the other.
        names = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in names:
            samples[name].append(time_call(variants[name], iters=iters, device=device))
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values)
