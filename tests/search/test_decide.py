"""The growth controller's rule on scripted accuracy sequences."""

import dataclasses

import pytest

from grownet.search.decide import StageOutcome, decide, gain_bound, kept_shares


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
        ({"blocked": {"depth": "next depth 7 > max_depth 6"}}, "max_depth 6"),
        ({"elapsed_s": 95.0, "time_budget_s": 100.0}, "safety stop"),
        ({"over_budget": "another stage would overrun iter_budget: 9 of 8"}, "9 of 8"),
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


# ------------------------------------------------------------------ growing both ways

BOTH = ("depth", "width")


def both(*steps, n=10_000):
    """Stage outcomes from ``(kind, accuracy, flops)`` steps, the base first."""
    return [
        StageOutcome(k, 3, acc, n, kind=kind, flops=flops)
        for k, (kind, acc, flops) in enumerate(steps)
    ]


BASE = ("base", 0.90, 1_000)


def d(accuracy, flops):
    return ("depth", accuracy, flops)


def w(accuracy, flops):
    return ("width", accuracy, flops)


@pytest.mark.parametrize(
    ("steps", "grow", "kind", "parent", "chosen", "says"),
    [
        ((BASE,), True, "depth", 0, 0, "the base"),
        ((BASE, d(0.95, 2_000)), True, "width", 1, 1, "depth pays"),
        # both paid: depth 5 points for 1,000 FLOPs beats width 2 points for 8,000
        ((BASE, d(0.95, 2_000), w(0.97, 10_000)), True, "depth", 2, 2, "next: depth"),
        # both paid: width 4 points for 1,000 FLOPs beats depth 1 point for 1,000
        ((BASE, d(0.91, 2_000), w(0.95, 3_000)), True, "width", 2, 2, "next: width"),
        # width did not pay: discarded, depth grows again from stage 1
        ((BASE, d(0.95, 2_000), w(0.95, 8_000)), True, "depth", 1, 1, "width does not pay"),
        # neither paid: stop at the base
        ((BASE, d(0.90, 2_000), w(0.90, 4_000)), False, None, 0, 0, "neither depth nor width"),
        # depth did not pay, width did: the network changed, so depth is tried again, but width
        # paid more per FLOP
        ((BASE, d(0.90, 2_000), w(0.95, 4_000)), True, "width", 2, 2, "width pays"),
        # ... and once width stops paying, depth gets its try on the wider network
        (
            (BASE, d(0.90, 2_000), w(0.95, 4_000), w(0.95, 16_000)),
            True, "depth", 2, 2, "width does not pay",
        ),
    ],
)  # fmt: skip
def test_both_ways_scripted(steps, grow, kind, parent, chosen, says):
    d = decide(both(*steps), kinds=BOTH, max_stages=10)
    assert (d.grow, d.chosen) == (grow, chosen), d.reason
    if grow:
        assert (d.kind, d.parent) == (kind, parent), d.reason
    assert says in d.reason


def test_both_ways_patience_counts_per_kind():
    s = both(BASE, ("depth", 0.90, 2_000), ("width", 0.90, 4_000))
    d = decide(s, kinds=BOTH, patience=2, max_stages=10)
    assert d.grow and d.parent == 0  # each kind failed once of twice: still open
    s = both(BASE, ("depth", 0.90, 2_000), ("width", 0.90, 4_000), ("depth", 0.90, 2_000))
    d = decide(s, kinds=BOTH, patience=2, max_stages=10)
    assert d.grow and d.kind == "width"  # depth has failed twice
    s = both(*((BASE,) + (("depth", 0.90, 2_000), ("width", 0.90, 4_000)) * 2))
    d = decide(s, kinds=BOTH, patience=2, max_stages=10)
    assert not d.grow and "neither" in d.reason


def test_both_ways_a_stage_that_fell_apart_ends_growth():
    s = both(BASE, ("depth", 0.95, 2_000))
    s.append(StageOutcome(2, 3, 0.1, 10_000, status="diverged", kind="width", flops=8_000))
    d = decide(s, kinds=BOTH, max_stages=10)
    assert (d.grow, d.chosen) == (False, 1) and "diverged" in d.reason


def test_a_blocked_kind_leaves_the_other():
    s = both(BASE, ("depth", 0.95, 2_000))
    d = decide(s, kinds=BOTH, blocked={"width": "every layer at max_width 8"}, max_stages=10)
    assert (d.grow, d.kind) == (True, "depth")
    d = decide(s, kinds=BOTH, max_stages=10,
               blocked={"width": "every layer at max_width 8", "depth": "depth 9 > 8"})  # fmt: skip
    assert not d.grow and "max_width 8" in d.reason and "depth 9 > 8" in d.reason


def test_one_kind_grows_on_from_the_last_stage():
    s = both(BASE, ("width", 0.95, 4_000))
    d = decide(s, kinds=("width",))
    assert (d.grow, d.kind, d.parent) == (True, "width", 1)
    s = both(BASE, ("width", 0.95, 4_000), ("width", 0.95, 16_000))
    d = decide(s, kinds=("width",), patience=2)
    assert (d.grow, d.parent, d.chosen) == (True, 2, 1)  # patience: the wider one grows on


@pytest.mark.parametrize("kinds", [(), ("depth", "depth"), ("height",)])
def test_kinds_checked(kinds):
    with pytest.raises(ValueError, match="kinds must be"):
        decide(both(BASE), kinds=kinds)


def test_a_gain_that_more_training_alone_gives_does_not_pay():
    """Stage 1 beats stage 0 by 5 points, but stage 0 trained as long gains 4.9 of them."""
    base = StageOutcome(0, 3, 0.90, 10_000)
    longer = StageOutcome(0, 3, 0.949, 10_000)
    grown = StageOutcome(1, 5, 0.95, 10_000)
    assert decide([base, grown]).chosen == 1
    controlled = decide([base, dataclasses.replace(grown, baseline=longer)])
    assert controlled.chosen == 0 and "over stage 0 trained as long" in controlled.reason


def correct(*runs: tuple[bool, int]) -> tuple[bool, ...]:
    return tuple(flag for value, count in runs for flag in (value,) * count)


FLAGS = correct((True, 300), (False, 100))


@pytest.mark.parametrize(
    ("grown", "kept"),
    [
        (correct((True, 380), (False, 20)), {1}),  # clearly better
        (FLAGS, {0}),  # no better
        # on the edge: wins 55 samples, loses 45 (+2.5 points, paired bound about -0.7)
        (correct((False, 45), (True, 310), (False, 45)), {0, 1}),
    ],
)
def test_kept_shares_say_how_sure_growth_is(grown, kept):
    base = StageOutcome(0, 3, 0.75, 400, correct=FLAGS)
    stage = StageOutcome(1, 5, sum(grown) / 400, 400, correct=grown)
    shares = kept_shares([base, stage], replicates=200)
    assert {k for k, share in shares.items() if share >= 0.05} == kept
    assert abs(sum(shares.values()) - 1.0) < 1e-9
