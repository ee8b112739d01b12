"""The knee finder on synthetic curves: clean, noisy, knee-less, and immediately rising; and
its calibration, simulated: how often a flat curve gets a knee, how often a real one is found."""

import random

import numpy as np
import pytest

from grownet.search.knee import (
    FLAT,
    KNEE,
    NO_PLATEAU,
    difference_se,
    find_knee,
    holm,
    noise_z,
)

RATIOS = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]


def curve(knee: float, plateau: float = 0.02, slope: float = 0.5) -> list[float]:
    """Flat at ``plateau`` down to ``knee``, then rising linearly below it."""
    return [plateau + max(0.0, knee - r) * slope for r in RATIOS]


@pytest.mark.parametrize("knee", [0.7, 0.5, 0.3, 0.2])
def test_clean_curve_knee_is_found_where_it_is(knee):
    found = find_knee(RATIOS, curve(knee), n_test=10_000)
    assert (found.kind, found.ratio) == (KNEE, knee)


@pytest.mark.parametrize("seed", range(5))
def test_noisy_curve_knee_within_one_step(seed):
    rng = random.Random(seed)
    noisy = [e + rng.gauss(0, 0.002) for e in curve(0.4)]
    found = find_knee(RATIOS, noisy, n_test=10_000, max_rise=0.01)
    assert found.kind == KNEE and abs(found.ratio - 0.4) <= 0.1 + 1e-9


@pytest.mark.parametrize("seed", range(5))
def test_noisy_flat_curve_has_no_knee(seed):
    rng = random.Random(seed)
    flat = [0.05 + rng.gauss(0, 0.003) for _ in RATIOS]
    found = find_knee(RATIOS, flat, n_test=10_000, max_rise=0.01)
    assert (found.kind, found.ratio, found.found) == (FLAT, None, False)
    assert "no knee found" in found.describe()


def test_one_lucky_point_does_not_hide_the_rise():
    errors = curve(0.5)
    errors[-2] = 0.02  # a lucky point deep in the rising part
    assert find_knee(RATIOS, errors, n_test=10_000).ratio == 0.5


def test_curve_rising_from_the_start_has_no_plateau():
    rising = [0.05 + (0.9 - r) for r in RATIOS]
    found = find_knee(RATIOS, rising, n_test=10_000, plateau=0.02, max_rise=0.01)
    assert found.kind == NO_PLATEAU


def test_small_test_sets_widen_the_plateau():
    errors = curve(0.5, slope=0.05)  # +1 point per 0.2 of ratio below 0.5
    big = find_knee(RATIOS, errors, n_test=100_000, max_rise=0.0)
    small = find_knee(RATIOS, errors, n_test=1_000, max_rise=0.0)
    assert big.ratio == 0.5 and small.ratio < big.ratio


def test_order_of_points_does_not_matter():
    errors = curve(0.3)
    pairs = list(zip(RATIOS, errors, strict=True))[::-1]
    found = find_knee([r for r, _ in pairs], [e for _, e in pairs], n_test=10_000)
    assert found.ratio == 0.3


@pytest.mark.parametrize(
    ("ratios", "errors", "n", "message"),
    [
        ([0.5], [0.1], 100, "at least 2 points"),
        ([0.5, 0.4], [0.1], 100, "differ in length"),
        ([0.5, 0.5], [0.1, 0.2], 100, "distinct"),
        ([1.5, 0.4], [0.1, 0.2], 100, "in (0, 1]"),
        ([0.5, 0.4], [0.1, 2.0], 100, "rates in [0, 1]"),
        ([0.5, 0.4], [0.1, 0.2], 0, "n_test"),
    ],
)
def test_bad_input_is_named(ratios, errors, n, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        find_knee(ratios, errors, n_test=n)


def test_noise_helpers():
    assert noise_z(0.5) == pytest.approx(0.0) and noise_z(0.9) == pytest.approx(1.2816, 1e-3)
    assert difference_se(0.0, 100) > 0  # a perfect score still has one sample of noise
    with pytest.raises(ValueError, match="confidence"):
        noise_z(1.0)


def test_one_unlucky_point_does_not_pull_the_knee_up():
    errors = [0.1 if r >= 0.4 else 0.3 for r in RATIOS]
    errors[1] = 0.2  # ratio 0.8: one bad measurement well above the plateau
    found = find_knee(RATIOS, errors, n_test=1_000, plateau=0.1)
    assert (found.kind, found.ratio, found.outliers) == (KNEE, 0.4, (0.8,))
    assert "0.8 alone worse, taken for an outlier" in found.describe()


def test_one_lucky_point_past_the_knee_moves_it_one_ratio_at_most():
    errors = [0.1 if r >= 0.4 else 0.3 for r in RATIOS]
    errors[RATIOS.index(0.3)] = 0.1  # the first point past the knee looks fine
    found = find_knee(RATIOS, errors, n_test=1_000, plateau=0.1)
    assert found.ratio == pytest.approx(0.3)


def test_paired_correctness_is_used_and_sees_what_rates_cannot():
    rng = np.random.default_rng(1)
    ref = rng.random(1_000) >= 0.1
    near = ref.copy()
    near[np.flatnonzero(ref)[:25]] = False  # +2.5 points, every change against the net
    correct = [ref, ref, near, near]
    errors = [float(1 - c.mean()) for c in correct]
    ratios = [0.9, 0.7, 0.5, 0.3]
    paired = find_knee(ratios, errors, n_test=1_000, max_rise=0.0, correct=correct)
    rates = find_knee(ratios, errors, n_test=1_000, max_rise=0.0)
    assert paired.paired and (paired.kind, paired.ratio) == (KNEE, 0.7)
    assert not rates.paired and rates.kind == FLAT  # 2.5 points on 1,000 unpaired: noise
    assert "McNemar" in paired.describe()


def test_holm_adjusts_step_down():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5] and holm([]) == []


# --- calibration, simulated (binomial noise of the test set; a few seconds in all) ----------

CONFIDENCE = 0.9
TRIALS = 1_000


def _flat_false_knee_rate(n: int, trials: int, seed: int) -> float:
    """Share of flat curves (true error 10 % at every ratio and for the reference, each point
    measured on its own ``n`` samples: the harshest case, no shared test set) that get any
    answer but "flat"."""
    rng = np.random.default_rng(seed)
    plateaus = rng.binomial(n, 0.1, trials) / n
    errors = rng.binomial(n, 0.1, (trials, len(RATIOS))) / n
    kinds = [
        find_knee(RATIOS, list(e), n_test=n, plateau=float(p), max_rise=0.0,
                  confidence=CONFIDENCE).kind
        for p, e in zip(plateaus, errors, strict=True)
    ]  # fmt: skip
    return sum(k != FLAT for k in kinds) / trials


@pytest.mark.parametrize(("n", "trials"), [(450, TRIALS), (1_000, TRIALS), (10_000, 400)])
def test_flat_curves_get_a_knee_at_most_one_minus_confidence_of_the_time(n, trials):
    rate = _flat_false_knee_rate(n, trials, seed=n)
    # The promise is <= 1 - confidence; allow 3 binomial standard errors of the simulation.
    alpha = 1 - CONFIDENCE
    assert rate <= alpha + 3 * (alpha * (1 - alpha) / trials) ** 0.5, rate


def test_paired_flat_curves_are_calibrated_too():
    """Per-sample correctness on one shared test set: each ratio's net differs from the
    reference on 30 % of the samples it got wrong and as many it got right, errors equal."""
    rng = np.random.default_rng(7)
    n, trials, wrong = 1_000, 400, 0.1
    flip_back, flip = 0.3, 0.3 * wrong  # P(right | ref wrong), P(wrong | ref right)
    false = 0
    for _ in range(trials):
        ref = rng.random(n) >= wrong
        u = rng.random((len(RATIOS), n))
        correct = np.where(ref, u >= flip, u < flip_back)
        errors = list(1 - correct.mean(axis=1))
        found = find_knee(RATIOS, errors, n_test=n, plateau=float(1 - ref.mean()),
                          max_rise=0.0, correct=list(correct), plateau_correct=ref)  # fmt: skip
        assert found.paired
        false += found.kind != FLAT
    assert false / trials <= 0.1 + 3 * (0.09 / trials) ** 0.5


def test_a_ten_point_drop_is_found_where_it_is():
    """Accuracy 90 % down to ratio 0.5, 80 % below, n = 1,000, the default max_rise."""
    rng = np.random.default_rng(3)
    n = 1_000
    truth = np.array([0.1 if r >= 0.5 else 0.2 for r in RATIOS])
    plateaus = rng.binomial(n, 0.1, TRIALS) / n
    errors = rng.binomial(n, truth, (TRIALS, len(RATIOS))) / n
    found = [
        find_knee(RATIOS, list(e), n_test=n, plateau=float(p), confidence=CONFIDENCE)
        for p, e in zip(plateaus, errors, strict=True)
    ]
    detected = sum(k.kind == KNEE for k in found) / TRIALS
    located = sum(k.ratio == 0.5 for k in found) / TRIALS
    assert detected >= 0.95 and located >= 0.9, (detected, located)
