"""``grownet search``: grow, estimate minimum depth and width, verify, report.

Layout of ``runs/<name>/``::

    search.json         the spec as run          env.json     provenance
    config.json         the [train] settings     stages.jsonl one record per growth stage
    metrics.jsonl       every stage's curves, end to end (iteration counts on across stages)
    graphs/stage_K.json the network after stage K
    stages/stage_K/     stage K's run directory  sweeps/      one run directory per ratio
    verify/             the checks' run directories
    sweeps.json         the sweeps, knees, estimates and checks
    graph.json, weights.pt   the recommended network and its weights (the search's)
    final/<start>/      the final model's runs (inherited weights, from scratch)
    model/              the chosen final model: graph.json, weights.pt, config.json,
                        dataset.json (preprocessing; a table's encoding)
    search_summary.json, summary.txt, result.json, report.html

Every decision reads the validation split (``[validate]``; see :class:`ValidateSpec`); the test
split is read once per reported network, after the decisions (:mod:`grownet.search.summary`).

Everything is recomputed from the run directories on a rerun, so a rerun after Ctrl-C redoes
nothing that finished.
"""

from __future__ import annotations

import dataclasses
import json
import time
from functools import cached_property
from typing import Any

import torch

from grownet import data as gdata
from grownet.devices import available_device
from grownet.errors import RunDirError
from grownet.files import atomic_save, atomic_write_text
from grownet.graph import GraphError, NetGraph
from grownet.graph.widen import without_width_mixers
from grownet.provenance import environment
from grownet.search.budget import Plan
from grownet.search.final import final_iters, train_final, write_model
from grownet.search.grow import Growth, check_position, collapse_all, weighted_depth
from grownet.search.growing import Grower, Grown
from grownet.search.residual import residual_depth_sweep, residual_units
from grownet.search.runs import Echo, Trained, first, measure, spent, state_for
from grownet.search.spec import SearchSpec, SpecError
from grownet.search.summary import (
    depth_interval,
    format_summary,
    network_entry,
    sweep_entry,
    width_interval,
)
from grownet.search.sweeps import (
    SweepResult,
    depth_sweep,
    make_verifier,
    sweep_units,
    thinned,
    width,
    width_sweep,
)
from grownet.search.workers import parallel
from grownet.train.distributed import current_world, rank_device
from grownet.train.network import build_graph
from grownet.train.resume import differing_keys
from grownet.train.rundir import RunDir, capped_workers, run_path

# Spec fields that say where a search runs, not what it is: a rerun may change them.
_WHERE_IT_RUNS = ("source", "data_dir", "device")


__all__ = ["Search", "format_summary", "validated"]


def validated(spec: SearchSpec) -> SearchSpec:
    """``spec`` with the validation split its decisions read: ``[train] val_size`` as given,
    ``[validate] folds`` cross-validation, 0 where the dataset ships ``val/``, else the
    ``[validate]`` rule's hold-out."""
    v = spec.validate
    if v.folds and "val_size" in spec.train:
        raise SpecError(f"{spec.source}: [validate] folds = {v.folds} and [train] val_size "
                        "both choose the validation split; drop one")  # fmt: skip
    if v.folds:
        return dataclasses.replace(spec, train={**spec.train, "folds": v.folds})
    if "val_size" in spec.train:
        return spec
    config = spec.train_config(name="validate")
    size = v.held_out(config.dataset, data_dir=config.data_dir, download=config.download)
    return dataclasses.replace(spec, train={**spec.train, "val_size": size})


class Search:
    """One growth search over one spec, in ``runs_dir/name``."""

    def __init__(
        self, spec: SearchSpec, *, echo: Echo = print, quiet: bool = False, workers: int = 1
    ) -> None:
        """``workers`` > 1 trains the search's independent runs (folds, a stage and its
        control, the final model's starts) in that many processes (:mod:`.workers`)."""
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise SpecError(f"--workers must be a whole number >= 1, got {workers!r}")
        self.workers = workers
        self.spec = validated(spec)
        self.echo = echo
        self.quiet = quiet
        self.dir = RunDir(run_path(spec.runs_dir, spec.name, what="name"))
        self.started = time.perf_counter()

    # ------------------------------------------------------------------ setup

    @cached_property
    def base(self) -> NetGraph:
        """The spec's base network, shaped for its dataset (read with the search's split, so
        a split the data cannot give is refused here, before anything is written)."""
        config = self.spec.train_config(name="base")
        info = gdata.load_dataset(config.dataset, data_dir=config.data_dir,
                                  download=config.download, train_size=config.train_size,
                                  val_size=config.val_size, seed=config.seed,
                                  folds=config.folds, fold=0)  # fmt: skip
        return build_graph(config, info.in_shape, info.num_classes)

    @cached_property
    def units(self) -> list[tuple[str, ...]]:
        """The base network's width-sweep units (:func:`sweep_units`)."""
        return sweep_units(self.base, self.spec.width.layers)

    @cached_property
    def plan(self) -> Plan:
        """Every phase's most iterations (:mod:`grownet.search.budget`)."""
        return Plan.of(self.spec, width_groups=len(self.units))

    def _check(self, *, existing: bool = True) -> dict[str, Any]:
        """Every check of the spec against its base network and (``existing``) against what
        the directory holds, before anything is written; returns the spec as it is saved."""
        where = "--device" if self.spec.device else f"{self.spec.source} [train] device"
        available_device(self.spec.train_config(name=self.spec.name).device, label=where)
        mine = json.loads(json.dumps(self.spec.to_dict()))
        for key in _WHERE_IT_RUNS:
            del mine[key]
        if existing:
            self._check_directory(mine)
        self._check_positions(self.base)
        budget, least = self.spec.growth.iter_budget, self.plan.total(0)
        if budget and least > budget:
            raise SpecError(
                f"{self.spec.source} [growth] iter_budget = {budget:,} cannot cover the base and "
                f"what follows it (at most {least:,} iterations); raise it, or lower [verify] "
                "iters, the sweeps' iters_per_ratio or [final] iters"
            )
        sweep = self.spec.width
        heads = [u[0] for u in self.units if self.base.op(u[0]) == "attention"]
        if sweep.enabled and sweep.mode == "one_shot" and heads:
            raise SpecError(
                f'{self.spec.source} [width] mode = "one_shot" cannot sweep the heads of '
                f'{", ".join(heads)}: use "fine_tune", or name the other layers in [width] layers'
            )
        depth = self.spec.depth
        if depth.enabled and depth.method == "depth_dropout" and not residual_units(self.base):
            raise SpecError(
                f'{self.spec.source} [depth] method = "depth_dropout" needs a residual network '
                f"with units that keep their shape; {self.spec.model} has none: use "
                '"dropin" or "auto"'
            )
        return mine

    def _check_directory(self, mine: dict[str, Any]) -> None:
        """A search already here must be this spec's; a training run is not a search."""
        if self.dir.file("search.json").exists():
            theirs = self.dir.read_json("search.json")
            if changed := differing_keys(theirs, mine, ignore=_WHERE_IT_RUNS):
                raise SpecError(
                    f"{self.dir.path} holds a search with another spec (differs in "
                    f"{', '.join(changed)}); pass another --name, or --overwrite to delete it"
                )
        elif self.dir.holds_run():
            raise RunDirError(
                f"{self.dir.path} holds a training run, not a search; pass another --name"
            )

    def _prepare(self) -> None:
        mine = self._check()
        if self.dir.file("search.json").exists():
            self.echo(f"resuming the search in {self.dir.path}")
        for line in self.plan.describe():
            self.echo(line)
        self.dir.write_json("search.json", {**mine, "source": self.spec.source})
        config = self.spec.train_config(name=self.spec.name)
        self.dir.write_json("config.json", config.to_dict())
        self.dir.write_json("env.json", environment(rank_device(config.device, current_world())))

    def _check_positions(self, graph: NetGraph) -> None:
        g = self.spec.growth
        for position in g.insert_after:
            if position not in graph:
                raise SpecError(
                    f"{self.spec.source} [growth] insert_after: {position!r} is not a node of "
                    f"{self.spec.model}; see `grownet graph {self.spec.model}`"
                )
            if g.max_stages and "depth" in g.kinds:  # what the first stage grows there
                try:
                    check_position(graph, position, units=g.units)
                except GraphError as err:
                    raise SpecError(f"{self.spec.source} [growth] insert_after: {err}") from None

    # ------------------------------------------------------------------ growth

    def grow(self) -> Grown:
        """Train the base, then grow stage by stage until the rule says stop."""
        return Grower(self.spec, self.dir, self.base, self.plan, echo=self.echo,
                      quiet=self.quiet).run()  # fmt: skip

    # ------------------------------------------------------------------ estimates

    def run(self, *, overwrite: bool = False) -> dict[str, Any]:
        """Run (or resume) the search as the one writer of its directory; ``overwrite``
        first deletes what the directory holds (the user named it for that)."""
        # A mistake in the spec writes (or, with --overwrite, deletes) nothing.
        self._check(existing=not overwrite)
        if overwrite:
            self.dir.refuse_foreign()
        workers, said = capped_workers(self.workers)
        if said:
            self.echo(said)
        with self.dir.lock(), parallel(workers):
            if overwrite:
                self.dir.clear()
            return self._run()

    def _run(self) -> dict[str, Any]:
        self._prepare()
        grown = self.grow()
        runs, growths, decision = grown.runs, grown.growths, grown.decision
        chosen = runs[decision.chosen]
        verify = make_verifier(self.spec, self.dir.path / "verify", echo=self.echo,
                               quiet=self.quiet)  # fmt: skip
        sweeps: list[SweepResult] = []
        # The depth sweep thins the network growth kept: only an answer shallower than it is
        # used, so sweeping a deeper stage growth had rejected (as this did before) trained
        # that stage once more as a reference and checked depths that were then discarded
        # (MNIST at 500 iterations a stage: half of the search's training before its final
        # model, for nothing).
        growth = growths[decision.chosen]
        kept = dataclasses.replace(chosen, graph=without_width_mixers(chosen.graph))
        base = collapse_all(chosen.graph)
        full = self._full(grown, base, verify)
        start = full  # the widths are swept on the chosen depth's network
        method = self._depth_method(base, growth, any(g.blocks for g in growths),
                                    "depth" in grown.kept_kinds(decision.chosen))  # fmt: skip
        if method == "depth_dropout":
            result = residual_depth_sweep(
                self.spec, self.dir.path / "sweeps" / "depth", full, verify,
                echo=self.echo, quiet=self.quiet,
            )  # fmt: skip
            sweeps.append(result)
        elif method == "dropin":
            result = depth_sweep(
                self.spec, self.dir.path / "sweeps" / "depth", kept, growth, full, verify,
                echo=self.echo, quiet=self.quiet,
            )  # fmt: skip
            sweeps.append(result)
        shallower = sweeps[-1].reduced if sweeps and sweeps[-1].passed else None
        if shallower and weighted_depth(shallower.graph) < weighted_depth(base):
            start = shallower
        if self.spec.width.enabled:
            sweeps += self._width(start, full, verify)
        self.dir.write_json("sweeps.json", {"sweeps": [s.record for s in sweeps]})
        recommended = self._recommend(start, sweeps, verify)
        finals = None
        if self.spec.final.enabled:
            iters = final_iters(self.spec, len(grown.kept_kinds(decision.chosen)))
            trained, chosen = train_final(
                self.spec, self.dir.path / "final", recommended, iters=iters, echo=self.echo,
                quiet=self.quiet,
            )
            model = write_model(self.dir, chosen, self.spec, iters=iters)
            finals = {"iters": iters, "runs": [r.to_dict() for r in trained],
                      "chosen": chosen.to_dict(), "model": str(model)}  # fmt: skip
        return self._finish(grown, full, start, recommended, sweeps, finals)

    def _full(self, grown: Grown, base: NetGraph, verify: Any) -> Trained:
        """The chosen network trained on ``[verify] iters`` more: every check's reference.
        Where a later stage grew from it, that stage's control is this very training (the
        chosen network, from its weights, as long, under the same settings; its DropIns held
        at q = 0 compute what ``base`` collapses them to), so it is read back, not trained
        again."""
        k = grown.decision.chosen
        twins = [j for j in grown.controls if grown.parents[j] == k]
        if twins and self.spec.verify.iters == self.spec.growth.stage_iters:
            twin = grown.controls[twins[0]]
            self.echo(f"  full network: stage {k} trained on {self.spec.verify.iters} more is "
                      f"stage {twins[0]}'s control, {twin.path}: not trained again")  # fmt: skip
            return dataclasses.replace(twin, graph=base, state=state_for(base, twin.state))
        return verify(f"full-stage{k}", base, state_for(base, grown.runs[k].state))

    def _depth_method(
        self, chosen: NetGraph, growth: Growth, grew: bool, depth_kept: bool
    ) -> str | None:
        """Which depth sweep runs: depth dropout on a residual network, the DropIn ratio on a
        grown one ("auto" picks in that order), or none. The DropIn sweep only takes out the
        blocks ``growth`` kept, so when growth grew blocks (``grew``) but kept none
        (``depth_kept``) it cannot go below the chosen network and is not run."""
        method = self.spec.depth.method
        if not self.spec.depth.enabled or method == "off":
            return None
        if method in ("auto", "depth_dropout") and residual_units(chosen):
            return "depth_dropout"
        if method in ("auto", "dropin") and grew and not depth_kept:
            self.echo("depth sweep (DropIn ratio): skipped: growth kept no grown block, and "
                      "taking grown blocks out cannot go below the network kept")  # fmt: skip
            return None
        if method in ("auto", "dropin") and growth.blocks:
            return "dropin"
        self.echo(f"depth sweep ({method}): nothing to sweep on this network; skipped")
        return None

    def _width(self, start: Trained, full: Trained, verify: Any) -> list[SweepResult]:
        """Width sweeps on ``start``; every check is against ``full``, the chosen depth's
        network, so a recommendation thinned after a depth check is still held to it."""
        spec = self.spec.width
        units = sweep_units(start.graph, spec.layers)  # a coupled group is one unit
        if not units:
            self.echo("width sweep: no layer can be narrowed; skipped")
            return []
        groups = [list(u) for u in units] if spec.per_layer else [[n for u in units for n in u]]
        folder = self.dir.path / "sweeps"
        return [
            width_sweep(
                self.spec,
                folder / f"width-{group[0] if spec.per_layer else 'all'}",
                start,
                group,
                full,
                verify,
                echo=self.echo,
                quiet=self.quiet,
            )
            for group in groups
        ]

    def _recommend(self, start: Trained, sweeps: list[SweepResult], verify: Any) -> Trained:
        """``start`` narrowed by every width estimate that passed its check, verified."""
        keep: dict[str, int] = {}
        for s in sweeps:
            if s.passed and s.record["kind"] == "width":
                keep |= s.record["estimate"]["channels"]
        if not keep:
            return start
        passed = [s for s in sweeps if s.passed and s.record["kind"] == "width"]
        if len(passed) == 1 and len(keep) == len(passed[0].record["layers"]):
            return passed[0].reduced  # the recommended network is the one that check trained
        return verify("recommended", *thinned(start, keep))

    # ------------------------------------------------------------------ summary

    def _finish(
        self,
        grown: Grown,
        full: Trained,
        start: Trained,
        rec: Trained,
        sweeps: list[SweepResult],
        final: dict[str, Any] | None,
    ) -> dict[str, Any]:
        runs, decision = grown.runs, grown.decision
        kept = grown.kept_kinds(decision.chosen)
        # "best seen" is chosen on the decision split, like everything else
        best = max([*runs, full, start, rec], key=lambda r: r.accuracy)
        graph = rec.graph
        graph.to_json(self.dir.file("graph.json"))
        # one network's weights (under cross-validation, the first fold's)
        atomic_save(self.dir.file("weights.pt"), lambda f: torch.save(first(rec.state), f))
        # units per layer: channels, or features (a token layer's last dimension, not its
        # first; a token embedding's: the residual stream's width)
        widths = {n: width(graph, n) for n in graph.nodes_of("conv", "linear", "embedding")}
        heads = {n: width(graph, n) for n in graph.nodes_of("attention")}
        biggest = max(runs, key=lambda r: r.graph.num_params())
        # The test split, read once per reported network, now that every decision is taken.
        rec_test = measure(self.spec, rec.graph, rec.state)
        full_test = rec_test if full is rec else measure(self.spec, full.graph, full.state)
        entries = [sweep_entry(s.record, s.passed) for s in sweeps]
        config = self.spec.train_config(name=self.spec.name)
        cost = spent(self.dir.path)
        # a one-shot sweep's forward-only passes (BatchNorm recalibration) cost compute too
        passes = sum(s.record.get("forward_flops", 0) for s in sweeps)
        summary = {
            "name": self.spec.name,
            "dataset": self.spec.dataset,
            "protocol": {
                "decisions": rec.split,
                "n_val": rec.n_test if rec.split == "val" else 0,
                "n_test": rec_test.n,
                "val_size": config.val_size,
                "folds": config.folds,
                "held_out": _held_out_text(config.val_size, config.folds, config.seed),
            },
            "stages": len(runs),
            "chosen_stage": decision.chosen,
            "growth_decision": decision.reason,
            "growth_support": [
                {"stage": k, "depth": weighted_depth(runs[k].graph), "share": share}
                for k, share in grown.shares.items()
            ],
            "depth_pays": "depth" in kept,
            "grown": kept,
            "growth_kind": self.spec.growth.kind,
            "recommended": {
                **network_entry(rec, weighted_depth(graph), rec_test),
                "widths": widths,
                **({"heads": heads} if heads else {}),
            },
            "best": network_entry(best, weighted_depth(best.graph)),
            "full": network_entry(full, weighted_depth(full.graph), full_test),
            "largest": {"params": biggest.graph.num_params(), "flops": 2 * biggest.graph.macs()},
            "within_tolerance": best.accuracy - rec.accuracy <= self.spec.verify.tolerance,
            "sweeps": entries,
            "width_interval": width_interval(entries),
            "depth_interval": depth_interval(entries),
            "final": final,
            "n_val": rec.n_test,
            "n_test": rec_test.n,
            "wall_time_s": time.perf_counter() - self.started,
            "train_time_s": cost.train_time_s,
            "compute": {"train_flops": cost.train_flops + passes, "forward_flops": passes,
                        "iterations": cost.iterations, "runs": cost.runs,
                        # training the answer to the end, which brute force's pick needs too
                        "final_flops": spent(self.dir.path / "final").train_flops},
            "report": str(self.dir.file("report.html")),
        }
        self.dir.write_json("search_summary.json", summary)
        atomic_write_text(self.dir.file("summary.txt"), format_summary(summary) + "\n")
        answer = final["chosen"]["test_accuracy"] if final else rec_test.accuracy
        self.dir.write_json(
            "result.json",
            {
                "status": "search finished",
                "iterations": len(runs) * self.spec.growth.stage_iters,
                "final_test_accuracy": answer,
                "best_test_accuracy": answer,
                "final_test_loss": None,
                "wall_time_s": summary["wall_time_s"],
                "run_dir": str(self.dir.path),
                "reason": decision.reason,
            },
        )
        from grownet.report import try_write_report

        try_write_report(self.dir.path)
        return summary


def _held_out_text(val_size: int, folds: int, seed: int) -> str:
    if folds:
        return (f"{folds}-fold cross-validation of the training set, stratified, seed {seed}: "
                "each sample answered by the fold model that did not train on it")
    if val_size:
        return f"held out of the training set, stratified, seed {seed}"
    return "the dataset's own val/"
