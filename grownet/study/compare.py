"""Growth checked against brute force: where a search's recommendation lies on a study's front.

A growth search answers "how deep and how wide" with one network; a multi-objective study over
the same architectures answers with a Pareto front of accuracy against parameters. This module
places each recommendation on the front: is it dominated (some trial at least as accurate with
no more parameters, better in one), by how many accuracy points at equal or fewer parameters,
and how many parameters the front needs for the same accuracy. Cost: the search's training
compute (iterations x FLOPs per iteration, summed over every run: :mod:`grownet.train.compute`)
over the study's (every trial that trained, pruned ones included), and the seconds of
training beside it (same machine only). Whether the study ran long enough to stand for brute
force: how far its last quarter of trials moved the front (:func:`front_moved`).

>>> front = [Point(0.95, 1_000), Point(0.99, 5_000)]
>>> place(Point(0.97, 6_000), front)
{'dominated': True, 'accuracy_gap': 0.020000000000000018, 'params_ratio': 0.8333333333333334}
>>> place(Point(0.995, 6_000), front)["dominated"]
False
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grownet.errors import BadValueError
from grownet.search.runs import spent
from grownet.train.compute import format_flops


@dataclass(frozen=True)
class Point:
    accuracy: float
    params: int


def pareto(points: list[Point]) -> list[Point]:
    """The points no other point dominates (more accurate and no bigger, or as accurate and
    smaller), by parameters."""
    front = [
        p
        for p in points
        if not any(dominates(q, p) for q in points)
    ]
    return sorted(set(front), key=lambda p: (p.params, -p.accuracy))


def dominates(a: Point, b: Point) -> bool:
    return (a.accuracy >= b.accuracy and a.params <= b.params) and (
        a.accuracy > b.accuracy or a.params < b.params
    )


def place(rec: Point, points: list[Point]) -> dict[str, Any]:
    """Where ``rec`` lies against ``points``: dominated or not; ``accuracy_gap``, the best
    accuracy at equal or fewer parameters minus ``rec``'s (> 0: the study found better);
    ``params_ratio``, the fewest parameters reaching ``rec``'s accuracy over ``rec``'s (< 1:
    the study found smaller). ``None`` where no trial qualifies."""
    smaller = [p.accuracy for p in points if p.params <= rec.params]
    as_good = [p.params for p in points if p.accuracy >= rec.accuracy]
    return {
        "dominated": any(dominates(p, rec) for p in points),
        "accuracy_gap": max(smaller) - rec.accuracy if smaller else None,
        "params_ratio": min(as_good) / rec.params if as_good else None,
    }


def read_search(run: Path) -> dict[str, Any]:
    """A growth search's recommendation and training time, from its run directory."""
    file = run / "search_summary.json"
    try:
        summary = json.loads(file.read_text())
    except FileNotFoundError:
        raise BadValueError(f"--compare {run}: no search_summary.json; give a finished "
                            "`grownet search` run directory") from None  # fmt: skip
    except (OSError, ValueError) as err:
        raise BadValueError(f"--compare {run}: {file} is not readable ({err})") from None
    rec = summary["recommended"]
    final = summary.get("final")
    # The answer a user takes away: the final model's test accuracy (read once), else the
    # recommendation's; a search from before the validation protocol has only its test-
    # selected "accuracy".
    if final:
        accuracy, basis = final["chosen"]["test_accuracy"], "test"
    elif "test_accuracy" in rec:
        accuracy, basis = rec["test_accuracy"], "test"
    else:
        accuracy, basis = rec["accuracy"], "selected"
    compute = summary.get("compute") or {}
    seed = None
    config = run / "config.json"
    if config.exists():
        seed = json.loads(config.read_text()).get("seed")
    return {
        "run": str(run),
        "seed": seed,
        "accuracy": accuracy,
        "basis": basis,
        "params": rec["params"],
        "depth": rec["depth"],
        "widths": rec["widths"],
        "train_time_s": summary["train_time_s"],
        # a search from before summaries counted compute is counted from its run directories
        "train_flops": compute.get("train_flops") or spent(run).train_flops,
        "final_flops": (compute["final_flops"] if "final_flops" in compute
                        else spent(run / "final").train_flops),
    }


FRONT_SHARE = 0.75
"""The share of a study's trials whose front the rest are measured against (front_moved)."""


def front_moved(points: list[Point], *, share: float = FRONT_SHARE) -> float:
    """How far the trials after the first ``share`` of ``points`` (in trial order) moved the
    Pareto front: the largest accuracy gain of a final front point over the earlier front's
    best accuracy at no more parameters. A point smaller than anything the earlier front had
    extends the front rather than moving it, and is not counted. 0.0: the last trials found
    nothing better at any size the study had reached; a front that still moves by more than
    the differences the study is asked to judge has not settled.

    >>> front_moved([Point(0.9, 100), Point(0.95, 200), Point(0.9, 300), Point(0.96, 200)])
    0.010000000000000009
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be in (0, 1), got {share!r}")
    early = pareto(points[: _early(len(points), share)])
    moved = 0.0
    for p in pareto(points):
        if before := [q.accuracy for q in early if q.params <= p.params]:
            moved = max(moved, p.accuracy - max(before))
    return moved


def _early(n: int, share: float) -> int:
    """How many of ``n`` trials make the earlier front :func:`front_moved` measures against."""
    return max(1, int(n * share))


def _trial_flops(trial: Any, study_dir: Path | None) -> int | None:
    """A trial's training FLOPs: its ``train_flops`` attribute, else (a trial from before
    trials recorded it) counted from its run directory."""
    if trial.user_attrs.get("train_flops"):
        return int(trial.user_attrs["train_flops"])
    run = trial.user_attrs.get("run_dir")
    if study_dir is None or not run:
        return None
    # a train trial's own run, or every run of a search trial
    return spent(study_dir / run).train_flops or None


def compare(study: Any, searches: list[Path], *, study_dir: Path | None = None) -> dict[str, Any]:
    """Every search's answer placed on the study's accuracy/params front, with its cost
    against the study's (``study_dir``: where the trials' run directories are, for trials
    that did not record their compute).

    Both sides choose on validation and are scored on test once: the study's front is the
    Pareto front of its trials' validation accuracies, and each front trial enters the
    comparison with its test accuracy; a search enters with its final model's test accuracy.
    A study from before the protocol (no ``test_accuracy`` on its trials) is compared as it
    recorded, and the output says so."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("accuracy") is not None]  # fmt: skip
    if not done:
        raise BadValueError(f"study {study.study_name} has no finished trial to compare with")
    trained = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    costs = [_trial_flops(t, study_dir) for t in trained]
    study_flops = None if None in costs else sum(c for c in costs if c is not None)
    study_seconds = sum(t.user_attrs.get("train_time_s") or 0.0 for t in trained)
    decided = [Point(t.user_attrs["accuracy"], t.user_attrs["params"]) for t in done]
    chosen = pareto(decided)
    on_front = [t for t in done
                if Point(t.user_attrs["accuracy"], t.user_attrs["params"]) in chosen]  # fmt: skip
    honest = all(t.user_attrs.get("test_accuracy") is not None for t in on_front)
    if honest:
        points = [Point(t.user_attrs["test_accuracy"], t.user_attrs["params"]) for t in on_front]
    else:
        points = decided
    rows = []
    for run in searches:
        found = read_search(Path(run))
        found |= place(Point(found["accuracy"], found["params"]), points)
        found["compute_ratio"] = (found["train_flops"] / study_flops
                                  if study_flops and found["train_flops"] else None)  # fmt: skip
        # without the final model: what deciding cost (a study's pick trains to the end too)
        found["decision_ratio"] = ((found["train_flops"] - found["final_flops"]) / study_flops
                                   if study_flops and found["train_flops"] else None)  # fmt: skip
        found["time_ratio"] = found["train_time_s"] / study_seconds if study_seconds else None
        rows.append(found)
    return {
        "study": study.study_name,
        "trials": len(done),
        "trials_trained": len(trained),
        "basis": "test" if honest else "selected",
        "study_train_time_s": study_seconds,
        "study_train_flops": study_flops,
        # judged on the split the study's choices read (validation), in trial order
        "front_moved": front_moved(decided),
        "front_last_trials": len(decided) - _early(len(decided), FRONT_SHARE),
        "front": [{"accuracy": p.accuracy, "params": p.params} for p in pareto(points)],
        "searches": rows,
    }


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def format_comparison(c: dict[str, Any]) -> str:
    flops = c.get("study_train_flops")
    cost = f"{c['study_train_time_s']:.0f} s" + (f" and {format_flops(flops)}" if flops else "")
    lines = [
        f"growth versus brute force: {len(c['front'])} Pareto-optimal of {c['trials']} trials, "
        f"{cost} of training in the study",
        f"{'search':24s} {'seed':>4} {'accuracy':>9} {'params':>8} {'dominated':>9} "
        f"{'acc gap':>7} {'params x':>8} {'compute':>11} {'compute x':>9} {'w/o final':>9} "
        f"{'time':>6} {'time x':>6}",
    ]
    for r in c["searches"]:
        gap = "-" if r["accuracy_gap"] is None else f"{100 * r['accuracy_gap']:+.2f}"
        compute = format_flops(r["train_flops"]) if r.get("train_flops") else "-"
        lines.append(
            f"{Path(r['run']).name:24s} {r['seed'] if r['seed'] is not None else '-':>4} "
            f"{100 * r['accuracy']:8.2f}% {r['params']:>8,} "
            f"{'yes' if r['dominated'] else 'no':>9} {gap:>7} {_ratio(r['params_ratio']):>8} "
            f"{compute:>11} {_ratio(r.get('compute_ratio')):>9} "
            f"{_ratio(r.get('decision_ratio')):>9} {r['train_time_s']:5.0f}s "
            f"{_ratio(r.get('time_ratio')):>6}"
        )
    lines.append("acc gap: the study's best accuracy at no more parameters, minus the search's "
                 "(points); params x: the study's fewest parameters at the search's accuracy, "
                 "over the search's; compute: training FLOPs (iterations x FLOPs per "
                 "iteration, forward and backward, every run), compute x and time x: the "
                 "search's over the study's; w/o final: the search's compute less its final "
                 "model's (training the answer to the end, which the study's pick needs as "
                 "well) over the study's")  # fmt: skip
    if "front_moved" in c:
        lines.append(f"the study's front: its last {c['front_last_trials']} trials moved it by "
                     f"at most {100 * c['front_moved']:.2f} points of validation "
                     "accuracy")  # fmt: skip
    if c.get("basis") == "test" and all(r.get("basis") == "test" for r in c["searches"]):
        lines.append("accuracies: test, read once; the study's front chosen on validation, "
                     "each search's answer its final model")  # fmt: skip
    else:
        lines.append("accuracies: as each run selected them (a study or search from before the "
                     "validation protocol: optimistic, chosen on the split reported)")  # fmt: skip
    return "\n".join(lines)
