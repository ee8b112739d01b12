"""When does growth pay? The growth controller's rule, as a pure function of stage outcomes.

The DropIn paper reads "substantial improvement implies benefit from additional depth" (Sec. 5).
Made operational: a stage *pays* when the lower confidence bound of its accuracy gain over the
best stage so far is above ``min_gain``. A stage trains on from its parent's weights, so part
of any gain is only the extra training: when the stage's outcome carries a ``baseline`` (the
parent network trained as many more iterations without growing), the gain is measured over
that baseline instead, and what pays is the growth itself. The bound uses the paired standard
error of the per-sample correctness difference on the same validation split when both stages'
predictions are known (tighter: the two nets mostly agree), else the unpaired binomial one.
Growth stops after
``patience`` stages in a row that do not pay, at a stage that diverged or fell to chance, at
``max_stages``, when the network cannot grow (``blocked``: the search's ``max_depth``), or
when the next stage would overrun the iteration budget. Budgets that decide what is tried
count iterations, so the answer cannot depend on the machine's load; a wall-clock budget is a
safety stop only, and says so when it fires. The chosen network is the last stage that paid
(stage 0, the base, if none did).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from grownet.search.knee import noise_z, scores
from grownet.train.verdict import CONVERGED, NOT_CONVERGED

HEALTHY = (CONVERGED, NOT_CONVERGED)
REPLICATES = 400  # bootstrap resamples behind kept_shares
KINDS = ("depth", "width")


@dataclass(frozen=True)
class StageOutcome:
    """What one growth stage measured; ``correct`` is per-sample test correctness (optional),
    ``kind`` how the stage grew (``"base"`` for stage 0), ``flops`` its network's per sample."""

    stage: int
    depth: int
    accuracy: float
    n_test: int
    status: str = "converged"
    wall_time_s: float = 0.0
    correct: tuple[bool | float, ...] | None = None
    kind: str = "depth"
    flops: int = 0
    baseline: StageOutcome | None = None
    """The parent network trained as long as this stage, without growing (the control)."""


@dataclass(frozen=True)
class Decision:
    grow: bool
    chosen: int
    """Index (stage number) of the network the search keeps so far."""
    reason: str
    kind: str | None = None
    """How the next stage grows (``"depth"`` or ``"width"``), when ``grow``."""
    parent: int = 0
    """The stage whose network the next stage grows from."""


def gain_bound(new: StageOutcome, ref: StageOutcome, confidence: float) -> tuple[float, float]:
    """``(gain, lower bound)`` of ``new``'s accuracy over ``ref``'s at ``confidence``.

    >>> a = StageOutcome(0, 3, 0.90, 1000)
    >>> b = StageOutcome(1, 5, 0.95, 1000)
    >>> gain, low = gain_bound(b, a, 0.9)
    >>> round(gain, 3), low > 0
    (0.05, True)
    """
    gain = new.accuracy - ref.accuracy
    if new.correct is not None and ref.correct is not None and len(new.correct) == len(ref.correct):
        n = len(new.correct)
        diffs = [float(a) - float(b) for a, b in zip(new.correct, ref.correct, strict=True)]
        mean = sum(diffs) / n
        var = sum((d - mean) ** 2 for d in diffs) / max(1, n - 1)
        # floor: two nets that agree on every sample still carry one sample's uncertainty
        se = max(math.sqrt(var / n), 1.0 / n)
    else:
        n = min(new.n_test, ref.n_test)
        se = math.sqrt(sum(max(a * (1 - a), 1.0 / n) for a in (new.accuracy, ref.accuracy)) / n)
    return gain, gain - noise_z(confidence) * se


def decide(
    outcomes: Sequence[StageOutcome],
    *,
    kinds: Sequence[str] = ("depth",),
    min_gain: float = 0.0,
    confidence: float = 0.9,
    patience: int = 1,
    max_stages: int = 4,
    blocked: Mapping[str, str] | None = None,
    elapsed_s: float = 0.0,
    time_budget_s: float = math.inf,
    over_budget: str = "",
) -> Decision:
    """Whether to grow another stage after ``outcomes`` (stage 0 first), how, from which
    stage, and which to keep. ``kinds``: what may grow (one kind, or both: see the module
    docstring); ``blocked`` maps a kind that cannot grow further to why. ``over_budget``: why
    another stage would overrun the search's iteration budget (:mod:`grownet.search.budget`),
    or "".

    Example:
        >>> s = [StageOutcome(0, 3, 0.90, 1000), StageOutcome(1, 5, 0.95, 1000),
        ...      StageOutcome(2, 7, 0.951, 1000)]
        >>> decide(s[:2]).grow, decide(s).grow, decide(s).chosen
        (True, False, 1)
        >>> both = decide(s[:2], kinds=("depth", "width"))
        >>> both.kind, both.parent
        ('width', 1)
    """
    if not outcomes:
        raise ValueError("decide needs at least the base stage's outcome")
    if patience < 1:
        raise ValueError(f"patience must be >= 1, got {patience!r}")
    bad = [k for k in kinds if k not in KINDS]
    if not kinds or bad or len(set(kinds)) != len(kinds):
        raise ValueError(f"kinds must be distinct values of {KINDS}, got {tuple(kinds)!r}")
    compete = len(kinds) > 1
    blocked = dict(blocked or {})
    chosen, parent, why = 0, 0, "the base network"
    streak = dict.fromkeys(kinds, 0)
    rate: dict[str, float] = {}  # gain per added FLOP of each kind's latest stage
    for k, outcome in enumerate(outcomes[1:], 1):
        if outcome.status not in HEALTHY:
            return Decision(False, chosen, f"stage {k} {outcome.status}: keep stage {chosen}")
        kind = outcome.kind if outcome.kind in streak else kinds[0]
        control = outcome.baseline
        # the control stands in for the parent it continues (the parent is the chosen stage
        # whenever one kind grows; competing kinds grow from the chosen stage too)
        reference = control if control is not None and parent == chosen else outcomes[chosen]
        gain, low = gain_bound(outcome, reference, confidence)
        added = outcome.flops - outcomes[parent].flops
        rate[kind] = gain / max(added, 1)
        size = f"depth {outcome.depth}" if kind == "depth" else f"width, {outcome.flops:,} FLOPs"
        over = f"stage {chosen}" + (" trained as long" if reference is control else "")
        said = (
            f"stage {k} ({size}) gained {100 * gain:+.2f} points over {over} "
            f"(lower {100 * confidence:g}% bound {100 * low:+.2f})"
        )
        if low > min_gain:
            chosen, why = k, f"{said}: {kind} pays"
            streak = dict.fromkeys(kinds, 0)
        else:
            streak[kind] += 1
            why = f"{said}: {kind} does not pay"
            if not compete and streak[kind] >= patience:
                return Decision(False, chosen, f"{why}; keep stage {chosen}")
        # Competing kinds start every stage from the best network so far.
        parent = chosen if compete else k
    last = outcomes[-1]
    if last.status not in HEALTHY:
        return Decision(False, chosen, f"stage {last.stage} {last.status}")
    open_kinds = [k for k in kinds if streak[k] < patience and k not in blocked]
    if not open_kinds:
        tail = "; ".join([why, *(blocked[k] for k in kinds if k in blocked)])
        if compete and not blocked:
            tail += "; neither depth nor width pays any more"
        return Decision(False, chosen, f"{tail}; keep stage {chosen}")
    untried = [k for k in open_kinds if k not in rate]
    kind = untried[0] if untried else max(open_kinds, key=lambda k: (rate[k], -kinds.index(k)))
    if compete and not untried:
        # in accuracy points per added million FLOPs per sample, a size a person can read
        per = ", ".join(f"{k} {1e8 * rate[k]:+.3g}" for k in kinds if k in rate)
        why = f"{why}; next: {kind} (points gained per added MFLOP: {per})"
    if len(outcomes) - 1 >= max_stages:
        return Decision(False, chosen, f"{why}; reached max_stages = {max_stages}")
    if over_budget:
        return Decision(False, chosen, f"{why}; {over_budget}")
    if elapsed_s + last.wall_time_s > time_budget_s:
        return Decision(
            False,
            chosen,
            f"{why}; safety stop: another stage (~{last.wall_time_s:.0f} s) would overrun "
            f"time_budget_s ({elapsed_s:.0f} of {time_budget_s:.0f} s used), so this answer "
            "depends on the machine's load; raise time_budget_s and bound the search by "
            "iter_budget or max_stages instead",
        )
    return Decision(True, chosen, why, kind, parent)


def kept_shares(
    outcomes: Sequence[StageOutcome],
    *,
    replicates: int = REPLICATES,
    seed: int = 0,
    kinds: Sequence[str] = ("depth",),
    min_gain: float = 0.0,
    confidence: float = 0.9,
    patience: int = 1,
) -> dict[int, float]:
    """How often the rule keeps each stage when the validation samples are resampled: the
    growth answer's uncertainty. Every stage's (and control's) per-sample correctness is
    resampled with the same draw, so the pairing holds, and the rule reads the stages run;
    empty when a stage lacks its correctness.

    Example:
        >>> clear = [StageOutcome(0, 3, 0.80, 1000, correct=(True,) * 800 + (False,) * 200),
        ...          StageOutcome(1, 5, 0.95, 1000, correct=(True,) * 950 + (False,) * 50)]
        >>> kept_shares(clear, replicates=50)
        {1: 1.0}
    """
    import numpy as np

    n = outcomes[0].n_test
    every = [*outcomes, *(o.baseline for o in outcomes if o.baseline is not None)]
    if any(o.correct is None or len(o.correct) != n for o in every):
        return {}
    rng = np.random.default_rng(seed)
    arrays = {id(o): scores(o.correct) for o in every}

    def drawn(o: StageOutcome, pick: np.ndarray) -> StageOutcome:
        flags = arrays[id(o)][pick]
        base = None if o.baseline is None else drawn(o.baseline, pick)
        return dataclasses.replace(o, accuracy=float(flags.mean()), correct=tuple(flags.tolist()),
                                   baseline=base)  # fmt: skip

    counts: dict[int, int] = {}
    for _ in range(replicates):
        pick = rng.integers(0, n, n)
        kept = decide([drawn(o, pick) for o in outcomes], kinds=kinds, min_gain=min_gain,
                      confidence=confidence, patience=patience).chosen  # fmt: skip
        counts[kept] = counts.get(kept, 0) + 1
    return {k: c / replicates for k, c in sorted(counts.items())}
