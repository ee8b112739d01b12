"""The growth controller's rule on scripted accuracy sequences."""

import pytest

from grownet.search.decide import StageOutcome, decide, gain_bound


def stages(*accuracies, n=10_000, status=None):
    out = [StageOutcome(k, 3 + 2 * k, a, n) for k, a in enumerate(accuracies)]
    if status:
        k, what = status
        out[k] = StageOutcome(k, out[k].depth, out[k].accuracy, n, what)
    return out


@pytest.mark.parametrize(
    ("accuracies", "grow", "chosen", "says"),
    [
        ((0.90,), True, 0, "the base network"),
        ((0.90, 0.95), True, 1, "depth pays"),
        ((0.90, 0.95, 0.97), True, 2, "depth pays"),
        ((0.90, 0.95, 0.951), False, 1, "does not pay; keep stage 1"),
        ((0.90, 0.9005), False, 0, "does not pay; keep stage 0"),
        ((0.90, 0.85), False, 0, "does not pay"),
    ],
)
def test_grow_while_gain_is_significant(accuracies, grow, chosen, says):
    d = decide(stages(*accuracies))
    assert (d.grow, d.chosen) == (grow, chosen) and says in d.reason


def test_small_test_set_needs_a_bigger_gain():
    assert decide(stages(0.90, 0.92, n=10_000)).chosen == 1
    assert decide(stages(0.90, 0.92, n=200)).chosen == 0


def test_min_gain_raises_the_bar():
    assert decide(stages(0.90, 0.92), min_gain=0.0).grow
    assert not decide(stages(0.90, 0.92), min_gain=0.03).grow


def test_patience_allows_a_flat_stage_then_compares_with_the_best():
    s = stages(0.90, 0.95, 0.95, 0.97)
    assert decide(s[:3], patience=2).grow
    d = decide(s, patience=2)
    assert (d.grow, d.chosen) == (True, 3)
    assert not decide(stages(0.90, 0.95, 0.95, 0.951), patience=2).grow


@pytest.mark.parametrize("status", ["diverged", "interrupted"])
def test_unhealthy_stage_stops_and_keeps_the_last_good_one(status):
    d = decide(stages(0.90, 0.95, 0.10, status=(2, status)))
    assert (d.grow, d.chosen) == (False, 1) and status in d.reason


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"max_stages": 2}, "max_stages = 2"),
        ({"max_depth": 6, "next_depth": 7}, "max_depth 6"),
        ({"elapsed_s": 95.0, "time_budget_s": 100.0}, "overrun the time budget"),
    ],
)
def test_budgets_stop_growth(options, says):
    s = [StageOutcome(k, 3 + 2 * k, a, 10_000, wall_time_s=10.0) for k, a in
         enumerate((0.90, 0.95, 0.97))]  # fmt: skip
    d = decide(s, **options)
    assert not d.grow and d.chosen == 2 and says in d.reason


def test_paired_bound_is_tighter_than_unpaired():
    n = 1000
    ref = [True] * 900 + [False] * 100
    new = [True] * 915 + [False] * 85  # fixes 15 samples, breaks none
    a = StageOutcome(0, 3, 0.900, n, correct=tuple(ref))
    b = StageOutcome(1, 5, 0.915, n, correct=tuple(new))
    paired = gain_bound(b, a, 0.9)[1]
    unpaired = gain_bound(StageOutcome(1, 5, 0.915, n), StageOutcome(0, 3, 0.9, n), 0.9)[1]
    assert paired > 0 > unpaired


def test_needs_the_base_stage():
    with pytest.raises(ValueError, match="base stage"):
        decide([])
