"""Growth checked against brute force: where a search's recommendation lies on a study's front.

A growth search answers "how deep and how wide" with one network; a multi-objective study over
the same architectures answers with a Pareto front of accuracy against parameters. This module
places each recommendation on the front: is it dominated (some trial at least as accurate with
no more parameters, better in one), by how many accuracy points at equal or fewer parameters,
and how many parameters the front needs for the same accuracy. Time: the search's training
seconds against the study's.

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
    }


def compare(study: Any, searches: list[Path]) -> dict[str, Any]:
    """Every search's answer placed on the study's accuracy/params front.

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
    chosen = pareto([Point(t.user_attrs["accuracy"], t.user_attrs["params"]) for t in done])
    on_front = [t for t in done
                if Point(t.user_attrs["accuracy"], t.user_attrs["params"]) in chosen]  # fmt: skip
    honest = all(t.user_attrs.get("test_accuracy") is not None for t in on_front)
    if honest:
        points = [Point(t.user_attrs["test_accuracy"], t.user_attrs["params"]) for t in on_front]
    else:
        points = [Point(t.user_attrs["accuracy"], t.user_attrs["params"]) for t in done]
    rows = []
    for run in searches:
        found = read_search(Path(run))
        found |= place(Point(found["accuracy"], found["params"]), points)
        rows.append(found)
    return {
        "study": study.study_name,
        "trials": len(done),
        "basis": "test" if honest else "selected",
        "study_train_time_s": sum(t.user_attrs.get("train_time_s") or 0.0 for t in done),
        "front": [{"accuracy": p.accuracy, "params": p.params} for p in pareto(points)],
        "searches": rows,
    }


def format_comparison(c: dict[str, Any]) -> str:
    lines = [
        f"growth versus brute force: {len(c['front'])} Pareto-optimal of {c['trials']} trials, "
        f"{c['study_train_time_s']:.0f} s of training in the study",
        f"{'search':28s} {'seed':>4} {'accuracy':>9} {'params':>9} {'dominated':>9} "
        f"{'acc gap':>8} {'params x':>8} {'time':>7}",
    ]
    for r in c["searches"]:
        gap = "-" if r["accuracy_gap"] is None else f"{100 * r['accuracy_gap']:+.2f}"
        ratio = "-" if r["params_ratio"] is None else f"{r['params_ratio']:.2f}"
        lines.append(
            f"{Path(r['run']).name:28s} {r['seed'] if r['seed'] is not None else '-':>4} "
            f"{100 * r['accuracy']:8.2f}% {r['params']:>9,} {'yes' if r['dominated'] else 'no':>9} "
            f"{gap:>8} {ratio:>8} {r['train_time_s']:6.0f}s"
        )
    lines.append("acc gap: the study's best accuracy at no more parameters, minus the search's "
                 "(points); params x: the study's fewest parameters at the search's accuracy, "
                 "over the search's")  # fmt: skip
    if c.get("basis") == "test" and all(r.get("basis") == "test" for r in c["searches"]):
        lines.append("accuracies: test, read once; the study's front chosen on validation, "
                     "each search's answer its final model")  # fmt: skip
    else:
        lines.append("accuracies: as each run selected them (a study or search from before the "
                     "validation protocol: optimistic, chosen on the split reported)")  # fmt: skip
    return "\n".join(lines)
