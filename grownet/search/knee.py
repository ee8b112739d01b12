"""The knee of an error-versus-ratio curve: where the error stops being flat and turns up.

The method (memorandum Sec. 5 made operational):

1. Sort the points from the largest ratio (most of the network kept) to the smallest.
2. Fit a monotone curve: the error may only grow as the ratio shrinks (isotonic regression).
   Pooling neighbours this way averages out test-set noise without a model of the curve's
   shape, and a single lucky or unlucky point cannot make or hide a knee.
3. The plateau's error is the full network's error when given, else the fit at the largest
   ratio. A point stays on the plateau while its fitted error is at most
   ``plateau + max(max_rise, z * se)``: the rise the user accepts, or what the test set can
   resolve, whichever is larger. ``se = sqrt(2 e (1 - e) / n)`` is the standard error of a
   difference of two error rates measured on ``n`` test samples, ``z`` the one-sided normal
   quantile at ``confidence``.
4. The knee is the smallest ratio still on the plateau. If every point is on it, the curve
   is flat ("no knee found": the network may be thinner still); if none is, the error rose
   at once ("no plateau"). Neither case invents a knee.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from sklearn.isotonic import IsotonicRegression

KNEE, FLAT, NO_PLATEAU = "knee", "flat", "no plateau"


@dataclass(frozen=True)
class Knee:
    """The knee finder's answer; ``ratio`` and ``error`` are None unless ``kind == "knee"``."""

    kind: str
    ratio: float | None
    error: float | None
    plateau: float
    threshold: float
    fitted: tuple[float, ...]
    """The monotone fit, in the order of the ratios given."""

    @property
    def found(self) -> bool:
        return self.kind == KNEE

    def describe(self) -> str:
        if self.kind == KNEE:
            return (
                f"knee at ratio {self.ratio:g} (error {self.error:.4f}; plateau "
                f"{self.plateau:.4f}, threshold {self.threshold:.4f})"
            )
        if self.kind == FLAT:
            return f"no knee found: the error stays within {self.threshold:.4f} at every ratio"
        return f"no knee found: the error exceeds {self.threshold:.4f} already at the first ratio"


def noise_z(confidence: float) -> float:
    """One-sided normal quantile: ``noise_z(0.9) = 1.28``."""
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence!r}")
    return NormalDist().inv_cdf(confidence)


def difference_se(error: float, n: int) -> float:
    """Standard error of the difference of two error rates near ``error`` on ``n`` samples
    (floored at one sample's worth, so a perfect score does not claim zero noise)."""
    e = min(max(error, 1.0 / n), 1.0 - 1.0 / n) if n > 1 else 0.5
    return math.sqrt(2.0 * e * (1.0 - e) / n)


def find_knee(
    ratios: Sequence[float],
    errors: Sequence[float],
    *,
    n_test: int,
    plateau: float | None = None,
    max_rise: float = 0.01,
    confidence: float = 0.9,
) -> Knee:
    """The smallest ratio whose (monotone-fitted) error is still on the plateau.

    Args:
        ratios: the swept ratios (the share of the network kept: larger is bigger).
        errors: test error rates at those ratios.
        n_test: how many samples each error was measured on.
        plateau: the full network's error; default: the fit at the largest ratio.
        max_rise: the error rise accepted over the plateau.
        confidence: how sure a rise must be before it leaves the plateau.

    Example:
        >>> r = [0.9, 0.7, 0.5, 0.3, 0.1]
        >>> find_knee(r, [0.02, 0.021, 0.02, 0.09, 0.40], n_test=10_000).ratio
        0.5
        >>> find_knee(r, [0.02, 0.021, 0.02, 0.019, 0.021], n_test=10_000).kind
        'flat'
    """
    if len(ratios) != len(errors):
        raise ValueError(f"ratios and errors differ in length: {len(ratios)} and {len(errors)}")
    if len(ratios) < 2:
        raise ValueError(f"a knee needs at least 2 points, got {len(ratios)}")
    if len(set(ratios)) != len(ratios) or any(not 0.0 < r <= 1.0 for r in ratios):
        raise ValueError(f"ratios must be distinct and in (0, 1], got {list(ratios)!r}")
    if any(not 0.0 <= e <= 1.0 for e in errors):
        raise ValueError(f"errors must be rates in [0, 1], got {list(errors)!r}")
    if not isinstance(n_test, int) or n_test < 1:
        raise ValueError(f"n_test must be a positive int, got {n_test!r}")
    if not 0.0 <= max_rise < 1.0:
        raise ValueError(f"max_rise must be in [0, 1), got {max_rise!r}")
    z = noise_z(confidence)
    fit = IsotonicRegression(increasing=False).fit(list(ratios), list(errors))
    fitted = [float(v) for v in fit.predict(list(ratios))]
    order = sorted(range(len(ratios)), key=lambda i: -ratios[i])
    base = fitted[order[0]] if plateau is None else plateau
    threshold = base + max(max_rise, z * difference_se(base, n_test))
    on = [i for i in order if fitted[i] <= threshold]
    # The fit is monotone, so the points on the plateau are a leading run of ``order``.
    if not on:
        return Knee(NO_PLATEAU, None, None, base, threshold, tuple(fitted))
    if len(on) == len(order):
        return Knee(FLAT, None, None, base, threshold, tuple(fitted))
    last = on[-1]
    return Knee(KNEE, ratios[last], errors[last], base, threshold, tuple(fitted))
