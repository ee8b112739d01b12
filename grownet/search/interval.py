"""How sure is a knee? A bootstrap over the validation samples behind a sweep.

A sweep's knee is read from per-sample correctness on one validation split: the full
network's and each swept ratio's. Resampling those samples with replacement (the same draw
for every point, so the pairing holds) and reading the knee again, many times, shows how far
the answer moves with the luck of the split: the interval holds the central ``level`` of the
replicates' estimates. Each replicate reads its estimate as the search does: the knee; a flat
curve's smallest ratio (the bound the search checks); a curve with no plateau, the full
network. A sweep whose errors were measured without per-sample correctness (the depth-dropout
sweep's sub-networks) is resampled from its error counts instead: a binomial draw per point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from grownet.search.knee import FLAT, KNEE, find_knee, scores

FULL = 1.0
"""The kept share a replicate with no plateau estimates: the whole network."""


@dataclass(frozen=True)
class KneeInterval:
    """The bootstrap's answer, in the knee finder's "share kept" ratios (larger: bigger).

    ``low`` and ``high`` bound the central ``level`` of the replicates' estimates;
    ``shares`` maps each estimate seen to the share of replicates that gave it.
    """

    low: float
    high: float
    level: float
    replicates: int
    paired: bool
    shares: dict[float, float]

    def to_dict(self) -> dict[str, object]:
        return {
            "low": self.low,
            "high": self.high,
            "level": self.level,
            "replicates": self.replicates,
            "paired": self.paired,
            "shares": {f"{k:g}": v for k, v in sorted(self.shares.items())},
        }


def knee_interval(
    kept: Sequence[float],
    errors: Sequence[float],
    *,
    n: int,
    plateau: float,
    max_rise: float,
    confidence: float,
    correct: Sequence[Sequence[bool] | None] | None = None,
    plateau_correct: Sequence[bool] | None = None,
    level: float = 0.9,
    replicates: int = 400,
    seed: int = 0,
) -> KneeInterval:
    """The bootstrap interval of the knee (estimate) of a swept curve.

    Arguments as :func:`grownet.search.knee.find_knee`'s (``kept``: the share of the
    network kept at each point); ``level``: the interval's coverage; ``seed``: the
    resampling's, so a rerun gives the same interval.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> full = rng.random(1000) > 0.05
        >>> points = [full.copy(), full.copy(), full & (rng.random(1000) > 0.3)]
        >>> iv = knee_interval([0.75, 0.5, 0.25], [1 - p.mean() for p in points], n=1000,
        ...                    plateau=1 - full.mean(), max_rise=0.01, confidence=0.9,
        ...                    correct=points, plateau_correct=full)
        >>> iv.low, iv.high
        (0.5, 0.5)
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 1:
        raise ValueError(f"replicates must be an int >= 1, got {replicates!r}")
    rng = np.random.default_rng(seed)
    rows = [None if c is None else scores(c) for c in correct or ()] or None
    paired = plateau_correct is not None and rows is not None and all(r is not None for r in rows)
    estimates = []
    for _ in range(replicates):
        if paired:
            pick = rng.integers(0, n, n)
            ref = scores(plateau_correct)[pick]
            drawn = [r[pick] for r in rows]  # type: ignore[index]
            errs = [1.0 - float(d.mean()) for d in drawn]
            knee = find_knee(kept, errs, n_test=n, plateau=1.0 - float(ref.mean()),
                             max_rise=max_rise, confidence=confidence, correct=drawn,
                             plateau_correct=ref)  # fmt: skip
        else:
            errs = [float(e) for e in rng.binomial(n, np.clip(errors, 0.0, 1.0)) / n]
            base = float(rng.binomial(n, min(max(plateau, 0.0), 1.0)) / n)
            knee = find_knee(kept, errs, n_test=n, plateau=base, max_rise=max_rise,
                             confidence=confidence)  # fmt: skip
        if knee.kind == KNEE:
            assert knee.ratio is not None
            estimates.append(knee.ratio)
        elif knee.kind == FLAT:
            estimates.append(min(kept))
        else:
            estimates.append(FULL)
    values = np.array(estimates)
    tail = (1.0 - level) / 2.0
    low = float(np.quantile(values, tail, method="inverted_cdf"))
    high = float(np.quantile(values, 1.0 - tail, method="inverted_cdf"))
    seen, counts = np.unique(values, return_counts=True)
    shares = {float(v): float(c) / replicates for v, c in zip(seen, counts, strict=True)}
    return KneeInterval(low, high, level, replicates, paired, shares)
