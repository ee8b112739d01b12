"""An architecture study's trials as networks: accuracy vs depth and vs parameters, the best.

Each trial of a grownet study carries user attributes that say what network it trained
(written by the study code; the report draws from these alone)::

    run_dir       str    the trial's run directory, relative to the study's ("trials/7")
    depth         int    weighted layers (conv + linear)
    params        int    parameters
    flops         int    forward FLOPs per sample
    widths        dict   node -> channels
    accuracy      float | null   final accuracy on ``split``, what the study chose by
    split         str    "val" when the trial held a validation split out, else "test";
                         absent in studies from before the validation protocol (on test)
    test_accuracy float | null   the test split's, read once after the trial (with ``split``
                         "val"); absent before the protocol
    status        str    the trainer's status ("converged", "diverged", "pruned" ...)
    train_time_s  float  ms_per_iter  float | null

Complete and pruned trials are drawn; a pruned trial's accuracy is its last intermediate value
(its ``split`` accuracy when it was stopped), since it never reached a final one. Every axis,
hover and table names the split of its accuracies, and shows the test accuracy beside where a
trial has one. The marked trials are Optuna's Pareto front over the study's objectives
(``study.best_trials``), or the best trial of a one-objective study; pruned trials are never
among them.

Example:
    >>> import optuna
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(direction="maximize")
    >>> for n, (depth, acc) in enumerate([(3, 0.90), (5, 0.95)]):
    ...     study.add_trial(optuna.trial.create_trial(value=acc, user_attrs={
    ...         "depth": depth, "params": 1000 * depth, "accuracy": acc,
    ...         "run_dir": f"trials/{n}", "widths": {"conv1": 8}, "status": "converged"}))
    >>> points = trial_points(study)
    >>> best = marked_trials(study)
    >>> fig = accuracy_figures(points, best, where="demo", single=True)["accuracy-depth"]
    >>> [(t.name, list(t.x), list(t.y)) for t in fig.data], fig.layout.yaxis.title.text
    ([('complete', [3, 5], [0.9, 0.95]), ('best trial', [5], [0.95])], 'test accuracy')
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go

from grownet.report.figures import fit_share_axis, integer_axis, styled
from grownet.report.load import number
from grownet.report.splits import named, word
from grownet.report.tables import count, percent, table

COMPLETE_COLOUR, PRUNED_COLOUR, MARK_COLOUR = "#1f77b4", "#9e9e9e", "#d62728"


@dataclass(frozen=True)
class TrialPoint:
    """One complete or pruned trial, as the network it trained."""

    number: int
    pruned: bool
    accuracy: float | None
    accuracy_from: str
    """Where ``accuracy`` was read: "final", "step N" (a pruned trial's last report) ..."""
    depth: int | None = None
    params: int | None = None
    flops: int | None = None
    widths: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    run_dir: str = ""
    split: str = "test"
    """The split ``accuracy`` is on: "val" or "test" (studies from before the protocol)."""
    test_accuracy: float | None = None
    """The test split's accuracy, read once after the trial; None when it was not."""


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _accuracy(trial: Any, objectives: Sequence[str], pruned: bool) -> tuple[float | None, str]:
    attrs = trial.user_attrs
    if pruned and trial.intermediate_values:
        step = max(trial.intermediate_values)
        return number(trial.intermediate_values[step]), f"step {step} (pruned)"
    if (accuracy := number(attrs.get("accuracy"))) is not None:
        return accuracy, "final"
    if "accuracy" in objectives and trial.values:  # the objective is the same number
        return number(trial.values[list(objectives).index("accuracy")]), "objective"
    return None, ""


def trial_points(study: Any) -> list[TrialPoint]:
    """The study's complete and pruned trials, read from their user attributes."""
    from optuna.trial import TrialState

    objectives = study.metric_names or []
    points = []
    states = (TrialState.COMPLETE, TrialState.PRUNED)
    for trial in study.get_trials(deepcopy=False, states=states):
        pruned = trial.state == TrialState.PRUNED
        attrs = trial.user_attrs
        accuracy, source = _accuracy(trial, objectives, pruned)
        widths = attrs.get("widths")
        points.append(
            TrialPoint(
                number=trial.number,
                pruned=pruned,
                accuracy=accuracy,
                accuracy_from=source,
                depth=_integer(attrs.get("depth")),
                params=_integer(attrs.get("params")),
                flops=_integer(attrs.get("flops")),
                widths=widths if isinstance(widths, dict) else {},
                status=str(attrs.get("status") or ("pruned" if pruned else "")),
                run_dir=str(attrs.get("run_dir") or ""),
                split="val" if attrs.get("split") == "val" else "test",
                test_accuracy=number(attrs.get("test_accuracy")),
            )
        )
    return points


def marked_trials(study: Any) -> set[int]:
    """Numbers of the Pareto-optimal trials (several objectives) or of the best trial (one);
    empty while no trial is complete."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return set()
    if len(study.directions) > 1:
        return {t.number for t in study.best_trials}
    return {study.best_trial.number}


def widths_text(widths: dict[str, Any], per_line: int = 4) -> str:
    """``{"conv1": 8, "fc": 10}`` as ``conv1 8, fc 10``, a line break every ``per_line``.

    Example:
        >>> widths_text({"a": 1, "b": 2, "c": 3}, per_line=2)
        'a 1, b 2,<br>c 3'
    """
    items = [f"{k} {v}" for k, v in widths.items()]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return ",<br>".join(lines)


_HOVER = (
    "trial %{customdata[0]} (%{customdata[6]})<br>%{customdata[8]} accuracy %{y:.4f} "
    "(%{customdata[7]})%{customdata[9]}<br>depth %{customdata[1]}<br>params %{customdata[2]:,}"
    "<br>FLOPs %{customdata[3]:,}<br>widths %{customdata[4]}<br>%{customdata[5]}<extra></extra>"
)


def _custom(p: TrialPoint) -> list[Any]:
    """What :data:`_HOVER` shows of one trial, in its order."""
    widths = widths_text(p.widths)
    tested = ""
    if p.test_accuracy is not None:
        tested = f"<br>test accuracy {p.test_accuracy:.4f} (read once)"
    return [p.number, p.depth, p.params, p.flops, widths, p.run_dir, p.status, p.accuracy_from,
            word(p.split), tested]  # fmt: skip


def _trace(points: Sequence[TrialPoint], x: str, name: str, marker: dict[str, Any]) -> go.Scatter:
    return go.Scatter(
        x=[getattr(p, x) for p in points],
        y=[p.accuracy for p in points],
        name=name,
        mode="markers",
        marker=marker,
        customdata=[_custom(p) for p in points],
        hovertemplate=_HOVER,
    )


def accuracy_figures(
    points: Sequence[TrialPoint], marked: set[int], *, where: str, single: bool
) -> dict[str, go.Figure]:
    """Accuracy vs depth and vs parameters (log axis) over the trials that have them: complete
    trials, pruned ones (grey crosses, at their last reported accuracy), and the Pareto-optimal
    (``single``: the best) trials ringed."""
    mark = "best trial" if single else "Pareto-optimal"
    figures = {}
    for x, key, title in (("depth", "accuracy-depth", "depth (weighted layers)"),
                          ("params", "accuracy-params", "parameters")):  # fmt: skip
        shown = [p for p in points if p.accuracy is not None and getattr(p, x) is not None]
        if not shown:
            continue
        fig = go.Figure()
        complete = [p for p in shown if not p.pruned]
        pruned = [p for p in shown if p.pruned]
        best = [p for p in complete if p.number in marked]
        if complete:
            fig.add_trace(_trace(complete, x, "complete", {"color": COMPLETE_COLOUR, "size": 9}))
        if pruned:
            style = {"color": PRUNED_COLOUR, "symbol": "x", "size": 9}
            fig.add_trace(_trace(pruned, x, "pruned (last reported)", style))
        if best:
            ring = {"symbol": "circle-open", "size": 18, "color": MARK_COLOUR,
                    "line": {"width": 2.5}}  # fmt: skip
            fig.add_trace(_trace(best, x, mark, ring))
        y = named((p.split for p in shown), "accuracy")
        styled(fig, title=f"{where}: {y} vs {x}", x=title, y=y)
        if x == "params":
            fig.update_xaxes(type="log")
        else:
            integer_axis(fig)
        figures[key] = fit_share_axis(fig)
    return figures


def marked_table(points: Sequence[TrialPoint], marked: set[int], *, single: bool) -> str:
    """The Pareto set (or the best trial), one row each, best accuracy first."""
    rows = sorted(
        (p for p in points if p.number in marked),
        key=lambda p: (-(p.accuracy if p.accuracy is not None else -1), p.number),
    )
    if not any(p.depth or p.params or p.accuracy is not None or p.run_dir for p in rows):
        return ""  # not a grownet architecture study: optuna's figures say it all
    what = "Best trial" if single else f"Pareto set ({len(rows)} trials)"
    # The trials were chosen on their split; the test accuracy beside, where read, chose nothing.
    tested = any(p.test_accuracy is not None for p in rows)
    head = ["trial", "depth", "widths", named((p.split for p in rows), "accuracy"),
            *(["test accuracy (read once)"] if tested else []), "parameters", "FLOPs",
            "run directory"]  # fmt: skip
    body = [
        [p.number, count(p.depth), widths_text(p.widths, per_line=len(p.widths) or 1) or "-",
         percent(p.accuracy), *([percent(p.test_accuracy)] if tested else []), count(p.params),
         count(p.flops), p.run_dir or "-"]
        for p in rows
    ]  # fmt: skip
    return f"<h4>{html.escape(what)}</h4>" + table(head, body)
