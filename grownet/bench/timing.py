"""Side-by-side timing: interleaved rounds, warm-up excluded, medians reported.

Timings on a shared machine are noisy, so competing variants are timed in alternating rounds
within one process and compared by their medians. On CUDA the clock is a pair of CUDA events on
the device's stream, read after synchronising, so asynchronous kernels are counted where they
run rather than when Python launched them.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
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


def check_timing_counts(timing: Any) -> None:
    """A timing's ``batch``, ``iters`` and ``rounds`` are >= 1 and its ``warmup`` >= 0."""
    for key in ("batch", "iters", "rounds"):
        if getattr(timing, key) < 1:
            raise ValueError(f"{key} must be >= 1, got {getattr(timing, key)!r}")
    if timing.warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {timing.warmup!r}")


@dataclass(frozen=True)
class PairTiming:
    """How two variants of one network are timed side by side: ``rounds`` turns of ``iters``
    training steps each (after ``warmup`` untimed ones) on a synthetic CIFAR batch.

    Example:
        >>> t = PairTiming(batch=2, rounds=1, iters=1, warmup=0)
        >>> dev, fmt, (x, y) = t.prepare()
        >>> tuple(x.shape), t.config()["rounds"]
        ((2, 3, 32, 32), 1)
    """

    batch: int = 64
    rounds: int = 7
    iters: int = 3
    warmup: int = 2
    device: str = "cpu"
    channels_last: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_timing_counts(self)

    def prepare(
        self,
    ) -> tuple[torch.device, torch.memory_format, tuple[torch.Tensor, torch.Tensor]]:
        """Seed, then the device, the memory format and the batch every variant is timed on."""
        torch.manual_seed(self.seed)
        device = torch.device(self.device)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        return device, memory_format, cifar_batch(self.batch, device, memory_format)

    def config(self) -> dict[str, Any]:
        """The settings a result records (the device goes into its provenance instead)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "device"}


def check_same_outputs(a: torch.Tensor, b: torch.Tensor, what: str, *, tol: float = 1e-4
                       ) -> float:  # fmt: skip
    """The largest gap between two variants' outputs; raise if they compute different things,
    since timing them side by side would then compare unlike work."""
    gap = (a - b).abs().max().item()
    if gap > tol:
        raise RuntimeError(f"{what} outputs differ by {gap:.3g}; not comparable")
    return gap


def cifar_batch(batch: int, device: torch.device, memory_format: torch.memory_format
                ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """One fixed synthetic CIFAR-shaped batch (images, labels): timing needs no real data."""
    x = torch.randn(batch, 3, 32, 32, device=device).to(memory_format=memory_format)
    return x, torch.randint(0, 10, (batch,), device=device)


def training_steps(
    variants: dict[str, tuple[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor]]],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    rounds: int,
    iters: int,
    warmup: int,
    device: torch.device,
) -> dict[str, list[float]]:
    """:func:`interleaved` over one training step (gradients zeroed, forward, cross-entropy,
    backward) of each variant: its module and how it runs ``x``."""
    from grownet.train.evaluation import prediction_loss

    def step(module: torch.nn.Module, forward: Callable[[torch.Tensor], torch.Tensor]) -> None:
        module.zero_grad(set_to_none=True)
        prediction_loss(forward(x), y).backward()

    for module, _ in variants.values():
        module.train()
    calls = {name: functools.partial(step, *variant) for name, variant in variants.items()}
    return interleaved(calls, rounds=rounds, iters=iters, warmup=warmup, device=device)


def median(values: list[float]) -> float:
    return statistics.median(values)
