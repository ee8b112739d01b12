"""One training run inside a search: a Trainer run directory, resumed if it exists.

Every stage, sweep point and check of a search is an ordinary run directory (config, graph,
metrics, checkpoint), so the evidence is inspectable on its own and an interrupted search
picks up where it stopped: a finished run is read back, a half-done one resumes from its
checkpoint.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from grownet.graph import NetGraph
from grownet.graph.plan import Sandwich
from grownet.search.spec import SearchSpec
from grownet.search.workers import run_all
from grownet.train.compute import run_flops
from grownet.train.rundir import WORKER_THREADS, RunDir, run_threads
from grownet.train.trainer import Trainer
from grownet.train.verdict import INTERRUPTED

Echo = Callable[[str], None]


class SearchInterrupted(Exception):
    """The user stopped the search; what finished is kept and a rerun resumes."""


State = dict[str, Tensor]
Weights = State | tuple[State, ...]
"""A run's weights: one state dict, or under k-fold cross-validation one per fold."""


@dataclass
class Trained:
    """A finished run: its network, final weights (CPU) and per-sample correctness on the
    split that takes decisions (``split``: "val" under the search's protocol). Under k-fold
    cross-validation a run is k trainings, one per fold (``state`` holds k state dicts) and
    ``correct`` each sample of the training set as its fold's model answered it, folds in
    order: one vector, paired from run to run like a hold-out's."""

    graph: NetGraph
    state: Weights
    accuracy: float
    correct: tuple[bool | float, ...]
    status: str
    wall_time_s: float
    path: Path
    split: str = "val"

    @property
    def n_test(self) -> int:
        """How many samples ``accuracy`` was measured on (the decision split's size)."""
        return len(self.correct)


def as_correct(flags: Tensor) -> tuple[bool | float, ...]:
    """``Trainer.correctness``'s tensor as a run records it: a bool per sample, or a language
    model's share of each sequence's tokens right (a float, never rounded to a bool)."""
    return tuple(flags.tolist())


def first(weights: Weights) -> State:
    """The state dict, or the first fold's: what a single network is saved with."""
    return weights[0] if isinstance(weights, tuple) else weights


def state_for(graph: NetGraph, state: Weights) -> Weights:
    """The entries of an executor's state dict that belong to nodes of ``graph``
    (keys are ``layers.<node>.<tensor>``): what a smaller network keeps of a bigger one."""
    nodes = set(graph.nodes)

    def kept(one: State) -> State:
        return {k: v for k, v in one.items() if k.split(".")[1] in nodes}

    return tuple(kept(s) for s in state) if isinstance(state, tuple) else kept(state)


def train_run(
    spec: SearchSpec,
    path: Path,
    graph: NetGraph,
    *,
    iters: int,
    init_state: Weights | None = None,
    fixed_q: Mapping[str, float] | None = None,
    sandwich: Sandwich | None = None,
    quiet: bool = False,
    **overrides: Any,
) -> Trained:
    """Train ``graph`` for ``iters`` under the spec's [train] settings in run directory ``path``
    (resuming it if it exists); raises :class:`SearchInterrupted` on Ctrl-C. ``fixed_q`` holds
    DropIn nodes at one ratio, ``sandwich`` trains one ratio a step (a one-shot sweep). Under
    k-fold cross-validation, one run per fold in ``path/fold_<i>`` (in parallel under
    :func:`grownet.search.workers.parallel`), fold i from the initial weights' fold i;
    ``overrides`` replace [train] settings (``folds=0``: train once)."""
    k = spec.train_config(name="folds", **overrides).folds
    if not k:
        return _train_one(spec, path, graph, iters, init_state, fixed_q, sandwich, quiet,
                          overrides)  # fmt: skip
    inits = init_state if isinstance(init_state, tuple) else (init_state,) * k
    # the folds do not wait on each other: in parallel under --workers
    runs = run_all([
        functools.partial(_train_one, spec, path / f"fold_{i}", graph, iters, inits[i], fixed_q,
                          sandwich, quiet, {**overrides, "fold": i})
        for i in range(k)
    ])  # fmt: skip
    correct = tuple(c for run in runs for c in run.correct)
    bad = [r.status for r in runs if r.status != runs[0].status]
    return Trained(
        graph=runs[0].graph,
        state=tuple(first(r.state) for r in runs),
        accuracy=sum(correct) / len(correct),
        correct=correct,
        status=bad[0] if bad else runs[0].status,
        wall_time_s=sum(r.wall_time_s for r in runs),
        path=path,
        split=runs[0].split,
    )


def _train_one(
    spec: SearchSpec,
    path: Path,
    graph: NetGraph,
    iters: int,
    init_state: Weights | None,
    fixed_q: Mapping[str, float] | None,
    sandwich: Sandwich | None,
    quiet: bool,
    overrides: dict[str, Any],
) -> Trained:
    in_worker = WORKER_THREADS in os.environ  # progress bars of parallel runs would interleave
    config = spec.train_config(
        name=path.name,
        runs_dir=str(path.parent),
        max_iter=iters,
        quiet=quiet or in_worker or spec.train.get("quiet", False),
        **overrides,
    )
    config.threads = run_threads(config.threads, path)
    trainer = Trainer(
        config,
        graph=graph,
        init_state=first(state_for(graph, init_state)) if init_state is not None else None,
        fixed_dropin_q=fixed_q,
        sandwich=sandwich,
    )
    result = trainer.run(resume=True)
    if result.status == INTERRUPTED:
        raise SearchInterrupted(f"interrupted in {path}")
    correct = trainer.correctness()
    return Trained(
        graph=trainer.graph,
        state={k: v.detach().cpu().clone() for k, v in trainer.net.state_dict().items()},
        accuracy=float(correct.float().mean()),
        correct=as_correct(correct),
        status=result.status,
        wall_time_s=result.wall_time_s,
        path=path,
        split=trainer.eval_split,
    )


@dataclass(frozen=True)
class Spent:
    """What the training runs under a folder cost: seconds, FLOPs (iterations x FLOPs per
    iteration, :mod:`grownet.train.compute`), iterations and how many runs (a fold each)."""

    train_time_s: float
    train_flops: int
    iterations: int
    runs: int


def spent(folder: Path) -> Spent:
    """The cost of every training run below ``folder`` (stages, baselines, sweep points,
    checks, final models, every fold), the same however many calls and resumptions it took;
    ``folder``'s own ``result.json`` (a search's record) is not a run, unless it is a run's
    own directory (no ``search.json``)."""
    seconds, flops, iterations, runs = 0.0, 0, 0, 0
    pattern = "*/**/result.json" if (folder / "search.json").exists() else "**/result.json"
    for result in sorted(folder.glob(pattern)):
        record = RunDir(result.parent).read_json("result.json")
        seconds += record["wall_time_s"]
        flops += run_flops(result.parent) or 0
        iterations += int(record.get("iterations", 0))
        runs += 1
    return Spent(seconds, flops, iterations, runs)


@dataclass(frozen=True)
class Measured:
    """A reported network's accuracy on one split, with the sample count behind it (and, on
    the decision split, each sample's correctness, for paired tests)."""

    split: str
    accuracy: float
    n: int
    correct: tuple[bool | float, ...] | None = None


def measure(spec: SearchSpec, graph: NetGraph, state: Weights, split: str = "test") -> Measured:
    """``graph`` holding ``state``'s weights evaluated on ``split`` ("test": the test split,
    read once per reported network after every decision; "eval": the decision split), without
    training (the spec's [train] device, batch and data settings). Under k-fold
    cross-validation "eval" is each fold's model on its fold, folds in order, and "test" the
    fold models' mean accuracy on the test split."""
    k = spec.folds
    states = state if isinstance(state, tuple) else (state,)
    flags = []
    for i, s in enumerate(states):
        config = spec.train_config(name="evaluate", max_iter=1, quiet=True,
                                   **({"fold": i} if k else {}))  # fmt: skip
        trainer = Trainer(config, graph=graph, init_state=first(state_for(graph, s)))
        flags.append(trainer.correctness(split))
        name = "test" if split == "test" else trainer.eval_split
    if split == "test":
        accuracy = sum(float(f.float().mean()) for f in flags) / len(flags)
        return Measured(name, accuracy, flags[0].numel())
    every = torch.cat(flags)
    return Measured(name, float(every.float().mean()), every.numel(), as_correct(every))
