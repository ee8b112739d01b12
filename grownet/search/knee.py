"""The knee of an error-versus-ratio curve: where the error stops being flat and turns up.

The method (memorandum Sec. 5 made a statistical test):

1. The reference is the full network's error when given (``plateau``), else the point at the
   largest ratio; every other ratio is tested against it.
2. One one-sided test per ratio, of "its error is at most ``max_rise`` above the reference":
   exact McNemar on the discordant samples when per-sample correctness is known for both (the
   nets are paired on one test set), else Fisher's exact test on the error counts; when
   ``max_rise > 0`` a normal test of the rise minus ``max_rise`` must reject as well.
3. Holm's step-down correction over all the tested ratios, at ``1 - confidence``. A ratio
   whose test rejects is *off* the plateau.
4. The knee sits just above the first off ratio (from the largest ratio down) that the next
   smaller ratio confirms by being off too (the smallest ratio needs no confirmation). An off
   ratio followed by an on one is an outlier: a real knee keeps the error up at every smaller
   ratio, so one unlucky point cannot pull the knee up, and one lucky point past the knee moves
   it by at most one ratio. No off ratio (or only outliers): "no knee found", the curve is flat.
   The first ratio confirmed off: "no plateau". Neither case invents a knee.

What is promised:

* On a flat curve (every ratio's true error equal to the reference's) the chance of any answer
  but "flat" is at most ``1 - confidence``, whatever the number of ratios and ``n_test``: the
  tests are exact and Holm's correction bounds the chance of even one false rejection. The
  same holds, up to the normal approximation of the ``max_rise`` test, on any curve whose true
  rise never exceeds ``max_rise``. Measured (tests/search/test_knee.py: 9 ratios and a
  reference, each on its own ``n`` samples at 10 % error, confidence 0.9, 1000 seeded curves
  each): 1.7 % at n = 450, 1.2 % at n = 1,000, 1.6 % at n = 10,000 with ``max_rise = 0``;
  0.5 / 0.2 / 0.0 % with the default 0.01. Holm's correction and the confirmation rule make
  it conservative: the nominal bound is 10 %.
* A real knee is found when the rise past it exceeds ``max_rise`` by a few standard errors of
  a difference. At n = 1,000 and 10 % error before the knee (same simulation), a drop of 10
  accuracy points past ratio 0.5 is found in 99.9 % of curves, at ratio 0.5 in 99.9 %; a
  5-point drop in 82 % (94 % with ``max_rise = 0``), a 3-point drop in 24 % (52 %). Rises too
  small to resolve place the knee lower; the sweep's verification step checks it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy.stats import binom, hypergeom, norm
from scipy.stats import t as t_dist

KNEE, FLAT, NO_PLATEAU = "knee", "flat", "no plateau"

Correct = Sequence[bool | float] | np.ndarray
"""Per-sample test correctness of one network, in the test set's order (bool, or a sequence's
share of tokens right)."""


@dataclass(frozen=True)
class Knee:
    """The knee finder's answer; ``ratio`` and ``error`` are None unless ``kind == "knee"``.

    ``p_values`` and ``off`` are in the order of the ratios given (the reference point, when it
    is one of them, has p-value 1 and is never off); ``outliers`` are the off ratios that the
    next smaller ratio did not confirm.
    """

    kind: str
    ratio: float | None
    error: float | None
    plateau: float
    max_rise: float
    confidence: float
    p_values: tuple[float, ...]
    """Holm-adjusted p-values: a ratio is off the plateau when its value is <= 1 - confidence."""
    off: tuple[bool, ...]
    outliers: tuple[float, ...]
    tested: int
    """How many ratios were tested against the plateau (Holm's family)."""
    next_ratio: float | None = None
    """The first ratio below the knee (off the plateau); None unless a knee was found."""
    test: str = "Fisher"
    """The test behind ``p_values``: "McNemar" (paired right/wrong samples), "paired t" (paired
    shares of a sequence's tokens right) or "Fisher" (error counts alone)."""

    @property
    def paired(self) -> bool:
        return self.test != "Fisher"

    @property
    def found(self) -> bool:
        return self.kind == KNEE

    def describe(self, shown: Callable[[float], float] = float) -> str:
        """One line; ``shown`` maps a ratio to the one the user swept (e.g. ``1 - r``).

        Example:
            >>> k = find_knee([0.9, 0.5, 0.1], [0.02, 0.02, 0.3], n_test=10_000)
            >>> k.describe()[:73]
            'knee at ratio 0.5 (error 0.0200; plateau 0.0200): from ratio 0.1 on the e'
        """
        test = (
            f"significantly more than {self.max_rise:g} above the plateau ({self.confidence:.0%} "
            f"confidence over {self.tested} ratios, {self.test}, "
            "Holm)"
        )
        odd = ""
        if self.outliers:
            listed = ", ".join(f"{shown(r):g}" for r in self.outliers)
            odd = f"; ratio {listed} alone worse, taken for an outlier"
        if self.kind == KNEE:
            assert self.ratio is not None and self.error is not None
            assert self.next_ratio is not None
            return (
                f"knee at ratio {shown(self.ratio):g} (error {self.error:.4f}; plateau "
                f"{self.plateau:.4f}): from ratio {shown(self.next_ratio):g} on the error is "
                f"{test}{odd}"
            )
        if self.kind == FLAT:
            return f"no knee found: no ratio's error is {test}{odd}"
        return f"no knee found: the error is {test} already at the first ratio"


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


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (reject where ``<= alpha``): the family-wise error
    rate is at most ``alpha`` under any dependence between the tests.

    >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
    """
    m = len(p_values)
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def unpaired_p(errors: np.ndarray, reference: float, n: int, max_rise: float) -> np.ndarray:
    """One-sided p-values of "error <= reference + max_rise" from error rates on ``n`` samples.

    Fisher's exact test (the rates' counts, conditional on their total), conservative when the
    errors come from one test set (they then move together); with ``max_rise > 0`` also the
    normal test of the rise less ``max_rise``, and the larger p-value is kept.

    >>> [round(float(p), 4) for p in unpaired_p(np.array([0.1, 0.13]), 0.1, 1000, 0.0)]
    [0.5297, 0.021]
    """
    k = np.rint(errors * n).astype(int)
    k0 = round(reference * n)
    p = hypergeom.sf(k - 1, 2 * n, k + k0, n)
    if max_rise > 0:
        var = _floored(errors, n) + _floored(np.array(reference), n)
        p = np.maximum(p, _normal_sf((errors - reference - max_rise) / np.sqrt(var / n)))
    return np.asarray(p, dtype=float)


def scores(values: Sequence[bool | float]) -> np.ndarray:
    """Per-sample results as an array: bool where each sample is right or wrong, float where
    a sample is a share of positions right (a language model's sequence)."""
    array = np.asarray(values)
    return array.astype(bool) if array.dtype == bool else array.astype(float)


def paired_p(correct: np.ndarray, reference: np.ndarray, max_rise: float) -> np.ndarray:
    """The same p-values from per-sample correctness, ``correct`` one row per ratio.

    Exact McNemar: among the samples the two nets disagree on, the ratio's net loses each with
    probability 1/2 when both nets err equally often. With ``max_rise > 0`` also the normal
    test of the paired rise less ``max_rise``. Per-sample shares (float rows: the share of a
    sequence's tokens right) take a one-sided paired t-test of the rise over ``max_rise``.

    >>> ref = np.array([True] * 90 + [False] * 10)
    >>> worse = ref.copy(); worse[:8] = False
    >>> [round(float(p), 4) for p in paired_p(np.stack([ref, worse]), ref, 0.0)]
    [1.0, 0.0039]
    """
    if correct.dtype != bool or reference.dtype != bool:
        return _paired_t(correct.astype(float), reference.astype(float), max_rise)
    lost = (reference & ~correct).sum(axis=1)  # right before, wrong at this ratio
    won = (~reference & correct).sum(axis=1)
    p = binom.sf(lost - 1, lost + won, 0.5)
    if max_rise > 0:
        n = reference.size
        rise = (lost - won) / n
        var = np.maximum((lost + won) / n - rise**2, 1.0 / n)  # one sample's noise at least
        p = np.maximum(p, _normal_sf((rise - max_rise) / np.sqrt(var / n)))
    return np.asarray(p, dtype=float)


def _paired_t(correct: np.ndarray, reference: np.ndarray, max_rise: float) -> np.ndarray:
    """p of "the mean per-sample drop exceeds ``max_rise``" for each row (Student's t)."""
    drops = reference - correct  # one row per ratio
    n = reference.size
    mean = drops.mean(axis=1)
    # floor: samples that all agree still carry one sample's (1/n) uncertainty
    sd = np.maximum(drops.std(axis=1, ddof=1) if n > 1 else 0.0, 1.0 / n)
    return np.asarray(t_dist.sf((mean - max_rise) / (sd / np.sqrt(n)), df=max(1, n - 1)))


def _floored(e: np.ndarray, n: int) -> np.ndarray:
    # A rate of 0 or 1 still carries one sample's uncertainty.
    e = np.clip(e, 1.0 / n, 1.0 - 1.0 / n)
    return e * (1.0 - e)


def _normal_sf(z: np.ndarray) -> np.ndarray:
    return norm.sf(z)


def find_knee(
    ratios: Sequence[float],
    errors: Sequence[float],
    *,
    n_test: int,
    plateau: float | None = None,
    max_rise: float = 0.01,
    confidence: float = 0.9,
    correct: Sequence[Correct | None] | None = None,
    plateau_correct: Correct | None = None,
) -> Knee:
    """The smallest ratio before the error rises significantly, and for good.

    Args:
        ratios: the swept ratios (the share of the network kept: larger is bigger).
        errors: test error rates at those ratios.
        n_test: how many samples each error was measured on.
        plateau: the full network's error; default: the point at the largest ratio.
        max_rise: the error rise accepted over the plateau.
        confidence: ``1 - confidence`` bounds the chance of a knee on a flat curve, over
            all the ratios together.
        correct: per-sample correctness at each ratio (an entry may be None), for the paired
            test; used when every tested ratio and the reference have it.
        plateau_correct: the full network's per-sample correctness, with ``plateau``.

    Example:
        >>> r = [0.9, 0.7, 0.5, 0.3, 0.1]
        >>> find_knee(r, [0.02, 0.021, 0.02, 0.09, 0.40], n_test=10_000).ratio
        0.5
        >>> find_knee(r, [0.02, 0.021, 0.02, 0.019, 0.021], n_test=10_000).kind
        'flat'
    """
    _check(ratios, errors, n_test, max_rise, correct)
    noise_z(confidence)  # checks it
    order = sorted(range(len(ratios)), key=lambda i: -ratios[i])
    tested = order if plateau is not None else order[1:]
    base = plateau if plateau is not None else errors[order[0]]
    if plateau is not None:
        ref_correct = plateau_correct
    else:
        ref_correct = None if correct is None else correct[order[0]]
    vectors = [None if correct is None else correct[i] for i in tested]
    paired = ref_correct is not None and all(v is not None for v in vectors)
    if paired:
        ref = scores(ref_correct)
        rows = np.stack([scores(v) for v in vectors])
        if rows.shape[1] != ref.size:
            raise ValueError(f"correctness vectors differ in length: {rows.shape[1]}, {ref.size}")
        raw = paired_p(rows, ref, max_rise)
        test = "McNemar" if rows.dtype == bool and ref.dtype == bool else "paired t"
    else:
        test = "Fisher"
        raw = unpaired_p(np.array([errors[i] for i in tested], float), base, n_test, max_rise)
    p_values = [1.0] * len(ratios)
    for i, p in zip(tested, holm([float(v) for v in raw]), strict=True):
        p_values[i] = p
    off = [p <= 1.0 - confidence for p in p_values]
    kind, at, outliers = _locate([off[i] for i in order])
    common = {
        "plateau": base, "max_rise": max_rise, "confidence": confidence,
        "p_values": tuple(p_values), "off": tuple(off), "test": test,
        "outliers": tuple(ratios[order[j]] for j in outliers), "tested": len(tested),
    }  # fmt: skip
    if kind != KNEE:
        return Knee(kind, None, None, **common)
    knee, below = order[at - 1], order[at]
    return Knee(KNEE, ratios[knee], errors[knee], next_ratio=ratios[below], **common)


def _locate(off: Sequence[bool]) -> tuple[str, int, list[int]]:
    """(kind, index of the first confirmed off point, outliers) for ``off`` flags from the
    largest ratio down: a point is confirmed by the next one being off too, or by being last.

    >>> _locate([False, True, False, True, True])
    ('knee', 3, [1])
    >>> _locate([False, True, False, False]), _locate([True, True])
    (('flat', -1, [1]), ('no plateau', 0, []))
    """
    outliers = []
    for j, bad in enumerate(off):
        if not bad:
            continue
        if j == len(off) - 1 or off[j + 1]:
            return (NO_PLATEAU if j == 0 else KNEE), j, outliers
        outliers.append(j)
    return FLAT, -1, outliers


def _check(
    ratios: Sequence[float],
    errors: Sequence[float],
    n_test: int,
    max_rise: float,
    correct: Sequence[Correct | None] | None,
) -> None:
    if len(ratios) != len(errors):
        raise ValueError(f"ratios and errors differ in length: {len(ratios)} and {len(errors)}")
    if len(ratios) < 2:
        raise ValueError(f"a knee needs at least 2 points, got {len(ratios)}")
    if len(set(ratios)) != len(ratios) or any(not 0.0 < r <= 1.0 for r in ratios):
        raise ValueError(f"ratios must be distinct and in (0, 1], got {list(ratios)!r}")
    if any(not 0.0 <= e <= 1.0 for e in errors):
        raise ValueError(f"errors must be rates in [0, 1], got {list(errors)!r}")
    if isinstance(n_test, bool) or not isinstance(n_test, int) or n_test < 1:
        raise ValueError(f"n_test must be a positive int, got {n_test!r}")
    if not 0.0 <= max_rise < 1.0:
        raise ValueError(f"max_rise must be in [0, 1), got {max_rise!r}")
    if correct is not None and len(correct) != len(ratios):
        raise ValueError(
            f"correct needs one entry per ratio: {len(correct)} for {len(ratios)} ratios"
        )
