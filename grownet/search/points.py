"""How a ratio sweep measures its points: fine-tuned ratio by ratio, or read off one network.

Fine-tuned (the memorandum's sweep, :func:`fine_tune_points`): from the trained weights, train
``iters_per_ratio`` at each ratio in turn, largest network first, and measure its validation
error. Once the ratios measured confirm a knee (or show no plateau), the smaller ratios left
could not move it (the knee is the last ratio before the first confirmed rise): they are not
trained, and recorded as stopped, with no error.

One-shot (:func:`one_shot_points`): train the network once at one ratio a step by the sandwich
rule (:class:`grownet.graph.plan.Sandwich`), then, for each ratio, re-estimate the BatchNorm
statistics at that ratio on a few hundred training samples and read the validation error
from the same weights: one training instead of one per ratio. The whole network's error is
read the same way and is the plateau the knee is tested against, so every point and its
reference share weights and statistics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from grownet.graph import NetGraph
from grownet.graph.plan import Sandwich
from grownet.search.runs import Echo, Trained, as_correct, first, state_for, train_run
from grownet.search.spec import SearchSpec, SweepSpec
from grownet.train.compute import forward_flops
from grownet.train.trainer import Trainer

STOPPED = "stopped"

Correct = tuple[bool | float, ...] | None
Settled = Callable[[list[dict[str, Any]], list[Correct]], str]
"""Given the points measured so far and their correctness: why the rest cannot matter, or ""."""


def measured(points: Sequence[dict[str, Any]]) -> list[int]:
    """The indices of the points that were measured (not stopped)."""
    return [i for i, p in enumerate(points) if p.get("error") is not None]


def fine_tune_points(
    spec: SearchSpec,
    sweep: SweepSpec,
    folder: Path,
    start: Trained,
    build: Callable[[float], tuple[NetGraph, dict[str, float] | None]],
    ratios: Sequence[float],
    echo: Echo,
    quiet: bool,
    measure: Callable[[float, Trained], tuple[dict[str, Any], Correct]] | None = None,
    settled: Settled | None = None,
) -> tuple[list[dict[str, Any]], list[Correct]]:
    """Fine-tune progressively through ``ratios``; one point (ratio, error) per ratio, and the
    per-sample correctness on the decision split behind each error (for the knee's paired
    test).

    The point's error is the fine-tuned network's validation error, unless ``measure`` (given
    the ratio and the run) says otherwise: it returns the keys that join the point's record
    (``error`` among them) and the per-sample correctness behind that error.
    With ``sweep.stop_early``, once ``settled`` gives a reason the ratios left are recorded
    as stopped (``error`` None, ``status`` "stopped", ``stopped`` the reason)."""
    points: list[dict[str, Any]] = []
    correct: list[Correct] = []
    state = start.state
    for k, ratio in enumerate(ratios):
        graph, fixed_q = build(ratio)
        run = train_run(
            spec,
            folder / f"r{ratio:.3f}",
            graph,
            iters=sweep.iters_per_ratio,
            init_state=state,
            fixed_q=fixed_q,
            quiet=quiet,
        )
        state = run.state
        point = {"ratio": ratio, "error": 1.0 - run.accuracy, "status": run.status}
        extra, behind = measure(ratio, run) if measure else ({}, run.correct)
        point |= extra
        points.append(point)
        # Kept out of the point: sweeps.json would hold a split's worth of booleans each.
        correct.append(behind)
        echo(f"  ratio {ratio:g}: {run.split} error {100 * point['error']:.2f} %")
        left = ratios[k + 1 :]
        if left and sweep.stop_early and settled and (why := settled(points, correct)):
            for r in left:
                points.append({"ratio": r, "error": None, "status": STOPPED, "stopped": why})
                correct.append(None)
            echo(f"  ratio {', '.join(f'{r:g}' for r in left)}: stopped, not trained ({why})")
            break
    return points, correct


def one_shot_points(
    spec: SearchSpec,
    sweep: SweepSpec,
    folder: Path,
    start: Trained,
    graph: NetGraph,
    sandwich: Sandwich,
    echo: Echo,
    quiet: bool,
) -> tuple[list[dict[str, Any]], list[Correct], Trained, int]:
    """Train ``graph`` once from ``start``'s weights under ``sandwich``, then read each of
    its values but the first (the swept ratios) as a point; returns the points, their
    correctness, the whole network (``sandwich.values[0]``) read the same way as a
    :class:`Trained` (the plateau the knee is read against), and the forward FLOPs of the
    recalibration passes."""
    iters = sweep.one_shot_iters or 2 * sweep.iters_per_ratio
    echo(f"  one-shot: {iters} iterations at one ratio a step (sandwich rule), then each "
         f"ratio read after re-estimating BatchNorm on {sweep.recalibrate} training "
         "samples")  # fmt: skip
    run = train_run(spec, folder / "one_shot", graph, iters=iters, init_state=start.state,
                    sandwich=sandwich, quiet=quiet)  # fmt: skip
    states = run.state if isinstance(run.state, tuple) else (run.state,)
    flags: list[list[torch.Tensor]] = [[] for _ in sandwich.values]
    samples = 0
    for i, state in enumerate(states):
        config = spec.train_config(name="one_shot_read", max_iter=1, quiet=True,
                                   **({"fold": i} if spec.folds else {}))  # fmt: skip
        trainer = Trainer(config, graph=graph, init_state=first(state_for(graph, state)))
        plan = trainer.planner.draw(iters - 1)
        for j, value in enumerate(sandwich.values):
            at = dataclasses.replace(
                plan, retain=dict.fromkeys(sandwich.retain, value),
                dropin_q={**plan.dropin_q, **dict.fromkeys(sandwich.dropin, value)},
            )  # fmt: skip
            samples += trainer.recalibrate(at, samples=sweep.recalibrate)
            flags[j].append(trainer.correctness(plan=at))
    read = [as_correct(torch.cat(f)) for f in flags]
    points, correct = [], []
    for value, c in zip(sandwich.values[1:], read[1:], strict=True):
        points.append({"ratio": value, "error": 1.0 - sum(c) / len(c), "status": run.status})
        correct.append(c)
        echo(f"  ratio {value:g}: {run.split} error {100 * points[-1]['error']:.2f} % (one-shot)")
    whole = dataclasses.replace(run, accuracy=sum(read[0]) / len(read[0]), correct=read[0])
    return points, correct, whole, forward_flops(graph, samples)
