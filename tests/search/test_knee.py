"""The knee finder on synthetic curves: clean, noisy, knee-less, and immediately rising."""

import random

import pytest

from grownet.search.knee import FLAT, KNEE, NO_PLATEAU, difference_se, find_knee, noise_z

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
    small = find_knee(RATIOS, errors, n_test=300, max_rise=0.0)
    assert small.threshold > big.threshold and small.ratio < big.ratio


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
