"""Side-by-side timing: interleaved rounds, warm-up excluded, medians reported.

Timings on a shared machine are noisy, so competing variants are timed in alternating rounds
within one process and compared by their medians; CUDA work is synchronised before each clock
read so that asynchronous kernels are counted where they run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], *, iters: int, device: torch.device) -> float:
    """Mean seconds per call of ``fn`` over ``iters`` calls."""
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - start) / iters


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
