"""What a study found: its best trial (one objective) or its Pareto set (several), as a table.

Everything comes from the storage's trials and their user attributes, so the summary of a
study spread over many machines is the same wherever it is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grownet.study.spec import StudySpec


def _row(trial: Any, study_dir: Path) -> dict[str, Any]:
    a = trial.user_attrs
    return {
        "number": trial.number,
        "values": list(trial.values),
        "params_sampled": dict(trial.params),
        "depth": a.get("depth"),
        "widths": a.get("widths", {}),
        "accuracy": a.get("accuracy"),
        "params": a.get("params"),
        "flops": a.get("flops"),
        "train_time_s": a.get("train_time_s"),
        "run_dir": str(study_dir / a["run_dir"]) if "run_dir" in a else None,
    }


def summarize(study: Any, spec: StudySpec, study_dir: Path, *, storage: str) -> dict[str, Any]:
    """The study's counts, its best trial or Pareto set, and its total training time."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = study.best_trials if len(spec.objectives) > 1 else (
        [study.best_trial] if complete else [])  # fmt: skip
    states = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    return {
        "name": spec.name,
        "kind": spec.kind,
        "objectives": list(spec.objectives),
        "directions": spec.directions,
        "storage": storage,
        "trials": {k: v for k, v in states.items() if v},
        "surplus": sum(bool(t.user_attrs.get("surplus")) for t in trials),
        "train_time_s": sum(t.user_attrs.get("train_time_s") or 0.0 for t in trials),
        "best": [_row(t, study_dir) for t in sorted(best, key=lambda t: t.number)],
        "pareto": len(spec.objectives) > 1,
    }


def format_summary(s: dict[str, Any]) -> str:
    """The table a user reads at the end of ``grownet study``."""
    what = "Pareto set" if s["pareto"] else "best trial"
    counts = ", ".join(f"{v} {k}" for k, v in s["trials"].items())
    lines = [
        f"study {s['name']} ({s['kind']}): {counts}; {s['train_time_s']:.0f} s of training; "
        f"storage {s['storage']}",
        f"{what} by {', '.join(s['objectives'])}:",
        f"{'trial':>5} {'depth':>5} {'accuracy':>9} {'params':>10} {'FLOPs':>12}  widths / run",
    ]
    for r in s["best"]:
        acc = "n/a" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f}%"
        widths = "/".join(str(w) for w in r["widths"].values())
        params = "-" if r["params"] is None else f"{r['params']:,}"
        flops = "-" if r["flops"] is None else f"{r['flops']:,}"
        lines.append(f"{r['number']:>5} {r['depth'] or '-':>5} {acc:>9} {params:>10} "
                     f"{flops:>12}  {widths}  {r['run_dir']}")  # fmt: skip
    if not s["best"]:
        lines.append("  (no finished trial yet)")
    return "\n".join(lines)
