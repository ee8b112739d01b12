"""The search's plan in iterations: what each phase may train, and ``iter_budget`` over all.

A search trains its growth stages (each with its control), then a depth sweep, width sweeps,
the checks of their estimates and the final model. Before it starts, every phase's size is
known from the spec up to how far growth goes, so :class:`Plan` gives an upper bound on the
iterations of everything after growth for any number of stages grown; growth stops when
another stage and the most that could follow it would overrun ``[growth] iter_budget``. The
budget thus covers the whole search, in iterations, never in seconds: the answer does not
depend on the machine's load. The bound is what a search can spend, not what it will: early
stopping, a check that passes first time and a reference read back from a control spend less.

Example:
    >>> from grownet.search.spec import load_spec
    >>> from grownet.shipped import resolve_spec
    >>> plan = Plan.of(load_spec(resolve_spec("digits")), width_groups=1)
    >>> plan.growth(1) == plan.stage_cost(0), plan.total(0) > plan.growth(1)
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

from grownet.search.spec import SearchSpec


@dataclass(frozen=True)
class Plan:
    """Upper bounds, in training iterations summed over runs (k folds count k times)."""

    spec: SearchSpec
    width_groups: int
    """Width sweeps that run (1, or each sweep unit of the base network with ``per_layer``)."""

    @classmethod
    def of(cls, spec: SearchSpec, *, width_groups: int) -> Plan:
        return cls(spec, width_groups if spec.width.per_layer else 1)

    @property
    def folds(self) -> int:
        """How many times each run of the search trains (one per fold, or once)."""
        return max(self.spec.folds, self.spec.validate.folds, 1)

    def stage_cost(self, k: int) -> int:
        """Stage ``k``: its training, and (past the base) its control's."""
        g = self.spec.growth
        runs = 1 if k == 0 or not g.baseline else 2
        return runs * g.stage_iters * self.folds

    def growth(self, stages: int) -> int:
        """The first ``stages`` stages (the base is stage 0)."""
        return sum(self.stage_cost(k) for k in range(stages))

    def _sweep(self, which: str) -> int:
        sweep = getattr(self.spec, which)
        if not sweep.enabled or (which == "depth" and sweep.method == "off"):
            return 0
        if sweep.mode == "one_shot":
            points = sweep.one_shot_iters or 2 * sweep.iters_per_ratio
        else:
            points = len(sweep.ratios) * sweep.iters_per_ratio
        # its fine-tunes, then a check of the estimate and at most `backoff` more
        checks = (1 + self.spec.verify.backoff) * self.spec.verify.iters
        groups = self.width_groups if which == "width" else 1
        return groups * (points + checks) * self.folds

    def after(self, stages: int) -> dict[str, int]:
        """Everything after growth, when the networks grown have at most ``stages`` stages
        past the base: each phase's most."""
        check = self.spec.verify.iters * self.folds
        final = self.spec.final
        final_iters = final.iters or self.spec.growth.stage_iters * (stages + 1)
        return {
            # the chosen network trained on (every check's reference), and the deepest
            # network's when that is another one
            "references": 2 * check,
            "depth sweep": self._sweep("depth"),
            "width sweeps": self._sweep("width"),
            "recommended check": check if self.spec.width.enabled else 0,
            "final model": len(final.starts) * final_iters if final.enabled else 0,
        }

    def total(self, stages: int) -> int:
        """The whole search when it grows ``stages`` stages past the base."""
        return self.growth(stages + 1) + sum(self.after(stages).values())

    def overrun(self, stages_done: int) -> str:
        """Why one more stage after ``stages_done`` stages (the base included) would take the
        search past ``iter_budget``, or "" when it fits (or there is no budget)."""
        budget = self.spec.growth.iter_budget
        need = self.total(stages_done)  # stages_done stages past the base once it is grown
        if not budget or need <= budget:
            return ""
        grown = self.growth(stages_done + 1)
        return (f"another stage would overrun iter_budget: {need:,} of {budget:,} iterations "
                f"(growth {grown:,}, then at most {need - grown:,} for the sweeps, checks and "
                "final model)")  # fmt: skip

    def progress(self, stages_done: int, seconds: float) -> str:
        """One line after ``stages_done`` stages that took ``seconds``: iterations so far, the
        most still to come, and how long that takes at the speed so far (a bigger network is
        slower: an estimate, never a decision)."""
        used = self.growth(stages_done)
        rest = self.total(self.spec.growth.max_stages) - used
        eta = rest * seconds / used if used else 0.0
        return (f"  search: {used:,} iterations so far, at most {rest:,} to come "
                f"(~{_duration(eta)} at the speed so far)")  # fmt: skip

    def describe(self) -> list[str]:
        """The plan in lines, for the console before the search starts."""
        g, f = self.spec.growth, self.folds
        times = f" x {f} folds" if f > 1 else ""
        control = " (+ its control)" if g.baseline else ""
        lines = [f"plan: base {g.stage_iters:,} iterations{times}; at most {g.max_stages} "
                 f"stage(s) of {g.stage_iters:,}{times}{control}"]  # fmt: skip
        after = self.after(g.max_stages)
        lines.append("  then at most " + ", ".join(
            f"{name} {n:,}" for name, n in after.items() if n))  # fmt: skip
        most = self.total(g.max_stages)
        budget = f"iter_budget {g.iter_budget:,}" if g.iter_budget else "no iter_budget"
        lines.append(f"  at most {most:,} iterations in all ({budget})")
        return lines


def _duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``2.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
