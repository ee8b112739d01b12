"""A search's growth stages: train the base, grow depth or width stage by stage, decide.

Each stage is an ordinary run directory (``stages/stage_K/``) trained from the weights of the
stage it grows from; ``stages.jsonl`` gets one record per stage (depth, parameters, FLOPs,
accuracy, wall time, kind, parent, what was grown, the decision) and ``metrics.jsonl`` one
curve across the stages. Everything is recomputed from those on a rerun: a finished stage is
read back, never trained again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from grownet.graph import NetGraph
from grownet.graph.widen import without_width_mixers
from grownet.search.budget import Plan
from grownet.search.decide import Decision, StageOutcome, decide, kept_shares
from grownet.search.grow import Growth, block_starts, grow_stage, weighted_depth
from grownet.search.runs import Echo, Trained, Weights, train_run
from grownet.search.spec import SearchSpec
from grownet.search.widen_stage import widen_stage, width_blocked
from grownet.search.workers import run_all
from grownet.train.rundir import RunDir


@dataclass
class Grown:
    """What growth produced: every stage's run and growth state, the final decision, and per
    stage the stage it grew from and how (``"base"``, ``"depth"``, ``"width"``)."""

    runs: list[Trained]
    growths: list[Growth]
    decision: Decision
    parents: list[int]
    kinds: list[str]
    shares: dict[int, float]
    """How often each stage is kept over bootstrap resamples of the validation samples."""
    controls: dict[int, Trained]
    """Stage k's control (its parent trained on as long), where one was trained."""

    def kept_kinds(self, chosen: int) -> list[str]:
        """How stage ``chosen`` was grown, stage by stage from the base."""
        kinds, k = [], chosen
        while k > 0:
            kinds.append(self.kinds[k])
            k = self.parents[k]
        return kinds[::-1]


class Grower:
    """The growth stages of one search, in its directory ``folder``."""

    def __init__(
        self, spec: SearchSpec, folder: RunDir, base: NetGraph, plan: Plan, *, echo: Echo,
        quiet: bool,
    ) -> None:  # fmt: skip
        self.spec, self.dir, self.base, self.plan = spec, folder, base, plan
        self.echo, self.quiet = echo, quiet
        self.parents: list[int] = []
        self.stage_kinds: list[str] = []

    def _stage(
        self, k: int, graph: NetGraph, growth: Growth, init: Weights | None
    ) -> Callable[[], Trained]:
        """Stage ``k``'s training, to run (a picklable call: it may train in a worker)."""
        g = self.spec.growth
        fixed = dict.fromkeys(growth.dropins(before_stage=k), 0.0)  # grown in already
        return functools.partial(
            train_run,
            self.spec,
            self.dir.path / "stages" / f"stage_{k}",
            graph,
            iters=g.stage_iters,
            init_state=init,
            fixed_q=fixed,
            quiet=self.quiet,
        )

    def run(self) -> Grown:
        """Train the base, then grow stage by stage until the rule says stop."""
        g = self.spec.growth
        records = {r["stage"]: r for r in self.dir.read_jsonl("stages.jsonl")}
        runs: list[Trained] = []
        growths: list[Growth] = []
        outcomes: list[StageOutcome] = []
        self.parents, self.stage_kinds = [], []
        trained_controls: dict[int, Trained] = {}
        decision = Decision(True, 0, "", "base", 0)
        k = 0
        while True:
            kind = decision.kind or "base"
            graph, growth, init, widened = self._next_network(k, kind, decision.parent, runs,
                                                              growths)  # fmt: skip
            done = k in records
            if not done:
                self.echo(
                    f"stage {k}: training {self._growing(k, kind, growth, widened)}, depth "
                    f"{weighted_depth(graph)}, {g.stage_iters} iterations ..."
                )
            # a stage and its control do not wait on each other: in parallel under --workers
            controls = self._baseline(k, decision.parent, runs, growths)
            run, *rest = run_all([self._stage(k, graph, growth, init), *controls])
            control = rest[0] if rest else None
            if control is not None:
                trained_controls[k] = control
            runs.append(run)
            growths.append(growth)
            self.parents.append(decision.parent)
            self.stage_kinds.append(kind)
            spent = sum(r.wall_time_s for r in runs)
            outcomes.append(
                StageOutcome(
                    k,
                    weighted_depth(run.graph),
                    run.accuracy,
                    run.n_test,
                    run.status,
                    run.wall_time_s,
                    run.correct,
                    kind=kind,
                    flops=2 * run.graph.macs(),
                    baseline=None if control is None else _outcome(control),
                )
            )
            decision = self._decide(outcomes, runs, growths, spent)
            if not done:
                self._record_stage(k, run, growth, decision, spent, kind, widened, control)
            self.echo(
                f"stage {k}: depth {weighted_depth(run.graph)}, {run.graph.num_params():,} "
                f"params, {run.split} accuracy {100 * run.accuracy:.2f} % "
                f"({run.wall_time_s:.1f} s) - {decision.reason}"
            )
            if decision.grow:  # seconds of every run so far, controls too
                seconds = spent + sum(c.wall_time_s for c in trained_controls.values())
                self.echo(self.plan.progress(len(outcomes), seconds))
            if not decision.grow:
                shares = kept_shares(
                    outcomes, kinds=g.kinds, min_gain=g.min_gain, confidence=g.confidence,
                    patience=g.patience, seed=self.spec.seed,
                )  # fmt: skip
                return Grown(runs, growths, decision, self.parents, self.stage_kinds, shares,
                             trained_controls)  # fmt: skip
            k += 1

    def _baseline(
        self, k: int, parent: int, runs: list[Trained], growths: list[Growth]
    ) -> list[Callable[[], Trained]]:
        """Stage ``k``'s control, to run: its parent's network trained on as long, not grown
        (none for the base, or without ``baseline``)."""
        if k == 0 or not self.spec.growth.baseline:
            return []
        fixed = dict.fromkeys(growths[parent].dropins(), 0.0)  # every grown block mixed in
        return [functools.partial(
            train_run,
            self.spec,
            self.dir.path / "stages" / f"baseline_{k}",
            without_width_mixers(runs[parent].graph),
            iters=self.spec.growth.stage_iters,
            init_state=runs[parent].state,
            fixed_q=fixed,
            quiet=self.quiet,
        )]  # fmt: skip

    def _next_network(
        self, k: int, kind: str, parent: int, runs: list[Trained], growths: list[Growth]
    ) -> tuple[NetGraph, Growth, Weights | None, list[dict[str, Any]]]:
        """Stage ``k``'s network grown from stage ``parent``'s: graph, growth state, initial
        weights and (width stages) what was widened."""
        g = self.spec.growth
        if k == 0:
            return self.base, Growth.start(g.insert_after), None, []
        run, growth = runs[parent], growths[parent]
        if kind == "depth":
            graph, grown = grow_stage(
                without_width_mixers(run.graph), growth, stage=k, mode=g.mode,
                dropin_length=g.dropin_length, stagger=g.stagger, stage_iters=g.stage_iters,
                units=g.units,
            )  # fmt: skip
            if isinstance(run.state, tuple):  # each fold's blocks start from its own weights
                state = tuple(block_starts(graph, grown, k, s, g.block_start) for s in run.state)
                return graph, grown, state, []
            return graph, grown, block_starts(graph, grown, k, run.state, g.block_start), []
        seed = self.spec.seed
        if isinstance(run.state, tuple):  # every fold's weights widened alike
            wide = [widen_stage(run.graph, s, g, stage=k, seed=seed) for s in run.state]
            return wide[0][0], growth, tuple(w[1] for w in wide), wide[0][2]
        graph, state, widened = widen_stage(run.graph, run.state, g, stage=k, seed=seed)
        return graph, growth, state, widened

    @staticmethod
    def _growing(k: int, kind: str, growth: Growth, widened: list[dict[str, Any]]) -> str:
        if kind == "base":
            return "the base"
        if kind == "width":
            return f"{len(widened)} widened layer group(s)"
        return f"{sum(b['stage'] == k for b in growth.blocks)} grown block(s)"

    def _decide(
        self, outcomes: list[StageOutcome], runs: list[Trained], growths: list[Growth],
        spent: float,
    ) -> Decision:  # fmt: skip
        """The rule's decision, with the kinds the network cannot grow by held back."""
        g = self.spec.growth
        blocked: dict[str, str] = {}
        while True:
            decision = decide(
                outcomes, kinds=g.kinds, blocked=blocked, min_gain=g.min_gain,
                confidence=g.confidence, patience=g.patience, max_stages=g.max_stages,
                elapsed_s=spent, time_budget_s=g.time_budget_s,
                over_budget=self.plan.overrun(len(outcomes)),
            )  # fmt: skip
            if not decision.grow or decision.kind is None:
                return decision
            run, growth = runs[decision.parent], growths[decision.parent]
            if decision.kind == "depth":
                deeper = weighted_depth(run.graph) + self._growth_per_stage(growth)
                why = f"next depth {deeper} > max_depth {g.max_depth}"
                why = why if deeper > g.max_depth else None
            else:
                why = width_blocked(run.graph, g)
            if why is None:
                return decision
            blocked[decision.kind] = why

    def _growth_per_stage(self, growth: Growth) -> int:
        if self.spec.growth.mode == "append":
            return len(growth.ends)
        return sum(len(ends) for ends in growth.ends.values())

    def _record_stage(
        self, k: int, run: Trained, growth: Growth, decision: Decision, spent: float, kind: str,
        widened: list[dict[str, Any]], control: Trained | None,
    ) -> None:  # fmt: skip
        self.dir.file("graphs").mkdir(exist_ok=True)
        run.graph.to_json(self.dir.file("graphs") / f"stage_{k}.json")
        new = [b for b in growth.blocks if b["stage"] == k]
        offset = k * self.spec.growth.stage_iters
        # One curve across stages, for the report. Rewritten whole, without any stage-k records
        # a killed earlier call left: recording a stage twice gives the same file.
        curve = [r for r in self.dir.read_metrics() if r.get("stage") != k]
        curve += [
            {**r, "iteration": r["iteration"] + offset, "stage": k}
            for r in RunDir(run.path).read_metrics()
        ]
        self.dir.write_jsonl("metrics.jsonl", curve)
        record = {
            "stage": k,
            "depth": weighted_depth(run.graph),
            "params": run.graph.num_params(),
            "flops": 2 * run.graph.macs(),
            "test_accuracy": run.accuracy,  # the decision split's (see "split"), kept by name
            "split": run.split,
            "n": run.n_test,
            "wall_time_s": spent,
            "stage_time_s": run.wall_time_s,
            "status": run.status,
            "kind": kind,
            "parent": self.parents[k],
            "action": _action(kind, new, widened),
            "widened": widened,
            "decision": decision.reason,
            "baseline_accuracy": None if control is None else control.accuracy,
            "growth": growth.to_dict(),
        }  # fmt: skip
        self.dir.append_jsonl("stages.jsonl", record)


def _action(kind: str, blocks: list[dict[str, Any]], widened: list[dict[str, Any]]) -> str:
    if kind == "base":
        return "train the base network"
    if kind == "width":
        return "widen " + ", ".join(f"{w['layer']} {w['from']}->{w['to']}" for w in widened)
    return f"grow {len(blocks)} block(s) after {', '.join(sorted({b['position'] for b in blocks}))}"


def _outcome(run: Trained) -> StageOutcome:
    return StageOutcome(0, weighted_depth(run.graph), run.accuracy, run.n_test, run.status,
                        run.wall_time_s, run.correct, flops=2 * run.graph.macs())  # fmt: skip
