"""Figures of a growth search: error on the search clock, the stages vs depth and FLOPs.

A ``grownet search`` directory (layout: :mod:`grownet.search.runner`) trains each stage as its
own run, whose clock starts at 0; its top-level ``metrics.jsonl`` tags each record with its
``stage``. Time is drawn on one search clock: each stage is shifted by the time the stages
before it took, and drawn as its own line, so no line runs back in time. A plain training run
is one line on its own clock. Every accuracy is on the split the run evaluated (a search's
decisions: validation under its protocol), named on each axis and hover
(:mod:`grownet.report.splits`); the sweeps are drawn by :mod:`grownet.report.sweeps`.

Example:
    >>> from pathlib import Path
    >>> from grownet.report.load import Run
    >>> run = Run(path=Path("s"), label="s", test=[
    ...     {"kind": "test", "iteration": 10, "accuracy": 0.5, "wall_time_s": 2.0, "stage": 0},
    ...     {"kind": "test", "iteration": 20, "accuracy": 0.8, "wall_time_s": 1.0, "stage": 1}],
    ...     stages=[{"stage": 0, "wall_time_s": 3.0, "stage_time_s": 3.0},
    ...             {"stage": 1, "wall_time_s": 5.0, "stage_time_s": 2.0}])
    >>> [(t.name, list(t.x)) for t in error_vs_time([run])["error-time"].data]
    [('s stage 0', [2.0]), ('s stage 1', [4.0])]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from scipy.stats import beta

from grownet.report.figures import colours, fit_share_axis, integer_axis, styled
from grownet.report.load import Run, number
from grownet.report.splits import common, eval_samples, label, samples_text, split_of

CONFIDENCE = 0.95  # of the per-stage intervals: the usual two-sided 95 %
_KEEP = re.compile(r"keep stage (\d+)")
_STAR = {"symbol": "star", "size": 18, "line": {"color": "black", "width": 1}}

# --------------------------------------------------------------------------- the search clock


def stage_offsets(run: Run) -> dict[int, float]:
    """Seconds the search had spent before each recorded stage began.

    ``stages.jsonl`` gives each stage's own time (``stage_time_s``) and the cumulative time
    through it (``wall_time_s``): their difference is the stages before it, right even when
    an earlier stage's record is missing. A record without ``stage_time_s`` (older files)
    starts where the previous recorded stage ended.

    Example:
        >>> from pathlib import Path
        >>> run = Run(path=Path("s"), label="s", stages=[
        ...     {"stage": 0, "wall_time_s": 3.0, "stage_time_s": 3.0},
        ...     {"stage": 1, "wall_time_s": 5.0}])
        >>> stage_offsets(run)
        {0: 0.0, 1: 3.0}
    """
    offsets: dict[int, float] = {}
    previous_end = 0.0
    for s in sorted(run.stages, key=lambda s: s["stage"]):
        own = number(s.get("stage_time_s"))
        offsets[s["stage"]] = s["wall_time_s"] - own if own is not None else previous_end
        previous_end = s["wall_time_s"]
    return offsets


def _clocked(run: Run) -> dict[int | None, list[tuple[float, float]]]:
    """(search-clock time, error) per stage (None: a run without stages)."""
    by_stage: dict[int | None, list[tuple[float, float]]] = {}
    for r in run.test:
        t, a = number(r.get("wall_time_s")), number(r.get("accuracy"))
        if t is not None and a is not None:
            stage = r.get("stage") if isinstance(r.get("stage"), int) else None
            by_stage.setdefault(stage, []).append((t, 1 - a))
    offsets = stage_offsets(run)
    ends = {s["stage"]: s["wall_time_s"] for s in run.stages}  # cumulative, through each stage
    end = 0.0
    for stage in sorted(k for k in by_stage if k is not None):
        # A stage with no record yet (still training) starts where the stages before it ended.
        offset = offsets.get(stage, max([end, *(t for k, t in ends.items() if k < stage)]))
        by_stage[stage] = [(t + offset, e) for t, e in by_stage[stage]]
        end = max(end, max(t for t, _ in by_stage[stage]))
    return by_stage


def error_vs_time(runs: Sequence[Run]) -> dict[str, go.Figure]:
    """Error (1 - accuracy, on each run's evaluation split) vs training wall time: what a
    faster variant buys; a growth search's stages one line each, end to end on the search's
    clock."""
    fig = go.Figure()
    palette = colours(runs)
    staged = False
    clocks = {run.label: _clocked(run) for run in runs}
    drawn = [run for run in runs if clocks[run.label]]
    for run in drawn:
        clocked = clocks[run.label]
        error = label(run, "error")
        for stage in sorted(clocked, key=lambda k: -1 if k is None else k):
            points = clocked[stage]
            staged |= stage is not None
            name = run.label if stage is None else f"{run.label} stage {stage}"
            fig.add_scatter(
                x=[t for t, _ in points],
                y=[e for _, e in points],
                name=name,
                legendgroup=run.label,
                mode="lines+markers",
                line={"color": palette[run.label]},
                marker={"symbol": "circle" if stage is None else _symbol(stage)},
                hovertemplate=f"{name}<br>%{{x:.1f}} s<br>{error} %{{y:.4f}}<extra></extra>",
            )
    if not fig.data:
        return {}
    x = "wall time (s" + ("; a search's stages end to end)" if staged else ")")
    y = common(drawn, "error")
    styled(fig, title=f"{y.capitalize()} vs training time", x=x, y=y)
    return {"error-time": fit_share_axis(fig)}


def _symbol(stage: int) -> str:
    return ("circle", "square", "diamond", "triangle-up", "cross", "x")[stage % 6]


# --------------------------------------------------------------------------- stages


def binomial_interval(
    accuracy: float, n: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Clopper-Pearson interval of an accuracy measured on ``n`` samples: exact for a
    binomial count, never outside [0, 1], honest at 0 % and 100 %.

    Example:
        >>> [round(x, 4) for x in binomial_interval(0.9, 1000)]
        [0.8797, 0.9179]
        >>> binomial_interval(1.0, 50)[1]
        1.0
    """
    k = round(accuracy * n)
    alpha = 1 - confidence
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def chosen_stage(run: Run) -> tuple[int | None, str]:
    """The stage the search kept, and why: ``search_summary.json`` once the search has ended,
    else the last stage's decision when it names one ("... keep stage 1"); else None (the
    search is still growing, or stopped for a reason that names no stage)."""
    chosen = run.search.get("chosen_stage")
    if isinstance(chosen, int) and not isinstance(chosen, bool):
        return chosen, str(run.search.get("growth_decision") or "")
    if run.stages:
        last = max(run.stages, key=lambda s: s["stage"])
        said = str(last.get("decision") or "")
        if m := _KEEP.search(said):
            return int(m.group(1)), said
    return None, ""


def accuracy_vs_depth(runs: Sequence[Run]) -> dict[str, go.Figure]:
    """Accuracy after each growth stage (on the split the search's decisions read) vs depth,
    each with its 95 % binomial interval when that split's size is known; the stage the
    search kept is starred."""
    fig = go.Figure()
    palette = colours(runs)
    staged = [run for run in runs if run.stages]
    for run in staged:
        stages = sorted(run.stages, key=lambda s: s["stage"])
        # "test_accuracy" keeps its name in stages.jsonl but holds the decision split's.
        accuracies = [s["test_accuracy"] for s in stages]
        # The exact binomial (Clopper-Pearson) interval of each stage's accuracy on the
        # samples it was measured on (eval_samples says where n was read); no n, no bars.
        n, source = eval_samples(run)
        bounds = [binomial_interval(a, n) if n else (None, None) for a in accuracies]
        interval = (
            f"<br>{CONFIDENCE:.0%} interval [%{{customdata[5]:.4f}}, %{{customdata[6]:.4f}}]"
            f" over {samples_text(n, split_of(run))} ({source})"
            if n
            else ""
        )
        custom = [
            [s["stage"], s["params"], s["flops"], s["wall_time_s"], _extras(s), *b]
            for s, b in zip(stages, bounds, strict=True)
        ]
        error_y = None
        if n:
            error_y = {
                "type": "data",
                "symmetric": False,
                "array": [hi - a for a, (_, hi) in zip(accuracies, bounds, strict=True)],
                "arrayminus": [a - lo for a, (lo, _) in zip(accuracies, bounds, strict=True)],
                "color": palette[run.label],
                "thickness": 1.2,
            }
        fig.add_scatter(
            x=[s["depth"] for s in stages],
            y=accuracies,
            name=run.label,
            legendgroup=run.label,
            mode="lines+markers+text",
            text=[f"s{s['stage']}" for s in stages],
            textposition="top center",
            line={"color": palette[run.label]},
            error_y=error_y,
            customdata=custom,
            hovertemplate=f"{run.label} stage %{{customdata[0]}}<br>depth %{{x}}"
            f"<br>{label(run, 'accuracy')} %{{y:.4f}}{interval}<br>params %{{customdata[1]:,}}"
            "<br>FLOPs %{customdata[2]:,}<br>wall %{customdata[3]:.1f} s"
            "<br>%{customdata[4]}<extra></extra>",
        )
        chosen, why = chosen_stage(run)
        kept = [s for s in stages if s["stage"] == chosen]
        if kept:
            fig.add_scatter(
                x=[kept[0]["depth"]],
                y=[kept[0]["test_accuracy"]],
                name=f"{run.label}: kept stage {chosen}",
                legendgroup=run.label,
                mode="markers",
                marker=_STAR | {"color": palette[run.label]},
                hovertemplate=f"{run.label}: the search kept stage {chosen}"
                f"<br>{_wrap(why)}<extra></extra>",
            )
    if not fig.data:
        return {}
    y = common(staged, "accuracy")
    styled(fig, title=f"{y.capitalize()} vs depth (growth stages; star: the stage kept)",
           x="depth (weighted layers)", y=y)  # fmt: skip
    return {"depth": integer_axis(fit_share_axis(fig))}


def accuracy_vs_flops(runs: Sequence[Run]) -> dict[str, go.Figure]:
    """For searches that grew width: accuracy (the decision split's) vs FLOPs per sample, each
    stage joined to the stage it grew from (a stage that did not pay is a dead end), marked
    by its kind."""
    fig = go.Figure()
    palette = colours(runs)
    symbols = {"base": "circle", "depth": "triangle-up", "width": "diamond"}
    widened = [r for r in runs if any(s.get("kind") == "width" for s in r.stages)]
    for run in widened:
        stages = {s["stage"]: s for s in run.stages}
        xs: list[float | None] = []
        ys: list[float | None] = []
        for s in stages.values():
            parent = stages.get(s.get("parent", s["stage"] - 1))
            if s["stage"] > 0 and parent is not None:
                xs += [parent["flops"], s["flops"], None]
                ys += [parent["test_accuracy"], s["test_accuracy"], None]
        colour = palette[run.label]
        fig.add_scatter(x=xs, y=ys, mode="lines", line={"color": colour}, name=run.label,
                        legendgroup=run.label, hoverinfo="skip")  # fmt: skip
        ordered = sorted(stages.values(), key=lambda s: s["stage"])
        fig.add_scatter(
            x=[s["flops"] for s in ordered],
            y=[s["test_accuracy"] for s in ordered],
            mode="markers+text",
            text=[f"s{s['stage']} {s.get('kind', '')}" for s in ordered],
            textposition="top center",
            marker={"color": colour, "size": 10,
                    "symbol": [symbols.get(s.get("kind", ""), "circle") for s in ordered]},
            name=f"{run.label} stages",
            legendgroup=run.label,
            customdata=[[s["stage"], s["params"], _extras(s)] for s in ordered],
            hovertemplate=f"{run.label} stage %{{customdata[0]}}<br>FLOPs %{{x:,}}"
            f"<br>{label(run, 'accuracy')} %{{y:.4f}}<br>params %{{customdata[1]:,}}"
            "<br>%{customdata[2]}<extra></extra>",
        )  # fmt: skip
    if not fig.data:
        return {}
    y = common(widened, "accuracy")
    styled(fig, title=f"{y.capitalize()} vs FLOPs (growth stages; lines: grown from)",
           x="FLOPs per sample", y=y)  # fmt: skip
    fig.update_xaxes(type="log")
    return {"flops": fit_share_axis(fig)}


def _wrap(text: str, width: int = 80) -> str:
    """Hover text broken at ``;`` and ``:`` so a long decision does not run off the page."""
    return re.sub(r"([;:]) ", r"\1<br>", text) if len(text) > width else text


def _extras(stage: dict[str, Any]) -> str:
    """The stage's other scalar keys, for hover (``action=insert after relu1``)."""
    known = {"stage", "depth", "params", "flops", "test_accuracy", "wall_time_s", "split", "n"}
    return "<br>".join(
        f"{k}={v}" for k, v in stage.items() if k not in known and isinstance(v, str | int | float)
    )
