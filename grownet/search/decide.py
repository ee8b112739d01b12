"""When does depth pay? The growth controller's rule, as a pure function of stage outcomes.

The DropIn paper reads "substantial improvement implies benefit from additional depth" (Sec. 5).
Made operational: a stage *pays* when the lower confidence bound of its accuracy gain over the
best stage so far is above ``min_gain``. The bound uses the paired standard error of the
per-sample correctness difference on the same test set when both stages' predictions are known
(tighter: the two nets mostly agree), else the unpaired binomial one. Growth stops after
``patience`` stages in a row that do not pay, at a stage that diverged or fell to chance, at
``max_stages`` or ``max_depth``, or when the next stage would overrun the time budget. The
chosen network is the last stage that paid (stage 0, the base, if none did).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from grownet.search.knee import noise_z
from grownet.train.trainer import CONVERGED, NOT_CONVERGED

HEALTHY = (CONVERGED, NOT_CONVERGED)


@dataclass(frozen=True)
class StageOutcome:
    """What one growth stage measured; ``correct`` is per-sample test correctness (optional)."""

    stage: int
    depth: int
    accuracy: float
    n_test: int
    status: str = "converged"
    wall_time_s: float = 0.0
    correct: tuple[bool, ...] | None = None


@dataclass(frozen=True)
class Decision:
    grow: bool
    chosen: int
    """Index (stage number) of the network the search keeps so far."""
    reason: str


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
        diffs = [int(a) - int(b) for a, b in zip(new.correct, ref.correct, strict=True)]
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
    min_gain: float = 0.0,
    confidence: float = 0.9,
    patience: int = 1,
    max_stages: int = 4,
    max_depth: int = 64,
    next_depth: int | None = None,
    elapsed_s: float = 0.0,
    time_budget_s: float = math.inf,
) -> Decision:
    """Whether to grow another stage after ``outcomes`` (stage 0 first), and which to keep.

    Example:
        >>> s = [StageOutcome(0, 3, 0.90, 1000), StageOutcome(1, 5, 0.95, 1000),
        ...      StageOutcome(2, 7, 0.951, 1000)]
        >>> decide(s[:2]).grow, decide(s).grow, decide(s).chosen
        (True, False, 1)
    """
    if not outcomes:
        raise ValueError("decide needs at least the base stage's outcome")
    if patience < 1:
        raise ValueError(f"patience must be >= 1, got {patience!r}")
    chosen, streak, why = 0, 0, "the base network"
    for k, outcome in enumerate(outcomes[1:], 1):
        if outcome.status not in HEALTHY:
            return Decision(False, chosen, f"stage {k} {outcome.status}: keep stage {chosen}")
        gain, low = gain_bound(outcome, outcomes[chosen], confidence)
        said = (
            f"stage {k} (depth {outcome.depth}) gained {100 * gain:+.2f} points over stage "
            f"{chosen} (lower {100 * confidence:g}% bound {100 * low:+.2f})"
        )
        if low > min_gain:
            chosen, streak, why = k, 0, f"{said}: depth pays"
        else:
            streak += 1
            why = f"{said}: depth does not pay"
            if streak >= patience:
                return Decision(False, chosen, f"{why}; keep stage {chosen}")
    last = outcomes[-1]
    if last.status not in HEALTHY:
        return Decision(False, chosen, f"stage {last.stage} {last.status}")
    if len(outcomes) - 1 >= max_stages:
        return Decision(False, chosen, f"{why}; reached max_stages = {max_stages}")
    if next_depth is not None and next_depth > max_depth:
        return Decision(False, chosen, f"{why}; next depth {next_depth} > max_depth {max_depth}")
    if elapsed_s + last.wall_time_s > time_budget_s:
        return Decision(
            False,
            chosen,
            f"{why}; another stage (~{last.wall_time_s:.0f} s) would overrun the time budget "
            f"({elapsed_s:.0f} of {time_budget_s:.0f} s used)",
        )
    return Decision(True, chosen, why)
