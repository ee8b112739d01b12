"""Learning-rate policies, as pure functions of the iteration.

The Caffe policies the papers' solvers use (``fixed``, ``step``, ``multistep``, ``inv``) plus
``cosine``, each optionally preceded by a linear warm-up. A pure function of the iteration
makes resume exact: nothing about the schedule needs to be checkpointed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

POLICIES = ("fixed", "step", "multistep", "inv", "cosine")


@dataclass(frozen=True)
class LRSchedule:
    """``lr(iteration)`` for one of :data:`POLICIES`.

    ``step``: ``base · gamma^floor(it / stepsize)``; ``multistep``: ``base · gamma^k`` with k
    the number of ``stepvalues`` already reached; ``inv``: ``base · (1 + gamma·it)^-power``
    (Caffe's LeNet solver: gamma 1e-4, power 0.75);
    ``cosine``: ``base · ½(1 + cos(π it / max_iter))``.
    With ``warmup`` > 0 the rate rises linearly from ``base / warmup`` over the first
    ``warmup`` iterations.

    Example:
        >>> s = LRSchedule("inv", base_lr=0.01, gamma=1e-4, power=0.75, max_iter=10_000)
        >>> round(s(0), 6), round(s(10_000), 6)
        (0.01, 0.005946)
    """

    policy: str
    base_lr: float
    max_iter: int
    gamma: float = 0.1
    power: float = 1.0
    stepsize: int = 0
    stepvalues: Sequence[int] = ()
    warmup: int = 0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"lr_policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if not 0 < self.base_lr < math.inf:
            raise ValueError(f"base_lr must be a number > 0, got {self.base_lr!r}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter!r}")
        if self.policy == "step" and self.stepsize < 1:
            raise ValueError(f"the step policy needs stepsize >= 1, got {self.stepsize!r}")
        if self.policy == "multistep" and not self.stepvalues:
            raise ValueError("the multistep policy needs stepvalues, e.g. --stepvalues 32000 48000")
        if self.policy == "multistep" and list(self.stepvalues) != sorted(self.stepvalues):
            raise ValueError(f"stepvalues must increase, got {list(self.stepvalues)}")
        if self.policy == "inv" and (self.gamma < 0 or self.power < 0):
            raise ValueError(
                f"the inv policy needs gamma and power >= 0, got {self.gamma!r} and {self.power!r}"
            )
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup!r}")

    def __call__(self, iteration: int) -> float:
        lr = self._policy(iteration)
        if iteration < self.warmup:
            lr *= (iteration + 1) / self.warmup
        return lr

    def _policy(self, it: int) -> float:
        base = self.base_lr
        if self.policy == "fixed":
            return base
        if self.policy == "step":
            return base * self.gamma ** (it // self.stepsize)
        if self.policy == "multistep":
            return base * self.gamma ** sum(it >= v for v in self.stepvalues)
        if self.policy == "inv":
            return base * (1.0 + self.gamma * it) ** (-self.power)
        return base * 0.5 * (1.0 + math.cos(math.pi * min(it, self.max_iter) / self.max_iter))
