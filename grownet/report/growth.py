"""Figures of a growth search: error on the search clock, the stages vs depth, the sweeps.

A ``grownet search`` directory (layout: :mod:`grownet.search.runner`) trains each stage as its
own run, whose clock starts at 0; its top-level ``metrics.jsonl`` tags each record with its
``stage``. Time is drawn on one search clock: each stage is shifted by the time the stages
before it took, and drawn as its own line, so no line runs back in time. A plain training run
is one line on its own clock.

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

from grownet.report.figures import colours, styled
from grownet.report.load import Run, n_test_of, number

SWEEP_AXES = {
    "width": "width dropout ratio",
    "depth": "depth dropout ratio",
    "dropin": "DropIn ratio",
}
_UNITS = {"width": "channels", "depth": "weighted layers", "dropin": "weighted layers"}
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
    """(search-clock time, test error) per stage (None: a run without stages)."""
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
    """Test error (1 - accuracy) vs training wall time: what a faster variant buys; a growth
    search's stages one line each, end to end on the search's clock."""
    fig = go.Figure()
    palette = colours(runs)
    staged = False
    for run in runs:
        clocked = _clocked(run)
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
                hovertemplate=f"{name}<br>%{{x:.1f}} s<br>test error %{{y:.4f}}<extra></extra>",
            )
    if not fig.data:
        return {}
    x = "wall time (s" + ("; a search's stages end to end)" if staged else ")")
    return {"error-time": styled(fig, title="Test error vs training time", x=x, y="test error")}


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
    """Test accuracy after each growth stage vs depth, each with its 95 % binomial interval
    when the test-set size is known; the stage the search kept is starred."""
    fig = go.Figure()
    palette = colours(runs)
    for run in runs:
        if not run.stages:
            continue
        stages = sorted(run.stages, key=lambda s: s["stage"])
        accuracies = [s["test_accuracy"] for s in stages]
        # The exact binomial (Clopper-Pearson) interval of each stage's accuracy on the n_test
        # samples it was measured on (n_test_of says where n was read); no n, no bars.
        n, source = n_test_of(run)
        bounds = [binomial_interval(a, n) if n else (None, None) for a in accuracies]
        interval = (
            f"<br>{CONFIDENCE:.0%} interval [%{{customdata[5]:.4f}}, %{{customdata[6]:.4f}}]"
            f" (n_test {n:,}, {source})"
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
            f"<br>test accuracy %{{y:.4f}}{interval}<br>params %{{customdata[1]:,}}"
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
    styled(fig, title="Test accuracy vs depth (growth stages; star: the stage kept)",
           x="depth (weighted layers)", y="test accuracy")  # fmt: skip
    return {"depth": fig}


def accuracy_vs_flops(runs: Sequence[Run]) -> dict[str, go.Figure]:
    """For searches that grew width: test accuracy vs FLOPs per sample, each stage joined to
    the stage it grew from (a stage that did not pay is a dead end), marked by its kind."""
    fig = go.Figure()
    palette = colours(runs)
    symbols = {"base": "circle", "depth": "triangle-up", "width": "diamond"}
    for run in runs:
        stages = {s["stage"]: s for s in run.stages}
        if not any(s.get("kind") == "width" for s in stages.values()):
            continue
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
            "<br>test accuracy %{y:.4f}<br>params %{customdata[1]:,}"
            "<br>%{customdata[2]}<extra></extra>",
        )  # fmt: skip
    if not fig.data:
        return {}
    styled(fig, title="Test accuracy vs FLOPs (growth stages; lines: grown from)",
           x="FLOPs per sample", y="test accuracy")  # fmt: skip
    fig.update_xaxes(type="log")
    return {"flops": fig}


def _wrap(text: str, width: int = 80) -> str:
    """Hover text broken at ``;`` and ``:`` so a long decision does not run off the page."""
    return re.sub(r"([;:]) ", r"\1<br>", text) if len(text) > width else text


def _extras(stage: dict[str, Any]) -> str:
    """The stage's other scalar keys, for hover (``action=insert after relu1``)."""
    known = {"stage", "depth", "params", "flops", "test_accuracy", "wall_time_s"}
    return "<br>".join(
        f"{k}={v}" for k, v in stage.items() if k not in known and isinstance(v, str | int | float)
    )


# --------------------------------------------------------------------------- sweeps


def _full_error(sweep: dict[str, Any]) -> float | None:
    """The error of the full network the sweep's estimate was checked against."""
    check = sweep.get("verification") or {}
    accuracy = number(check.get("full_accuracy"))
    return None if accuracy is None else 1 - accuracy


def sweep_plateau(run: Run, index: int) -> tuple[float | None, str]:
    """The error the knee of ``run.sweeps[index]`` was tested against, and how it was found.

    ``sweeps.json`` does not store it (:func:`grownet.search.sweeps.read_knee` passes
    ``1 - reference.accuracy`` to the knee finder and keeps only the knee), so unless a record
    carries ``plateau`` it is rebuilt from what the search wrote, following its code: a DropIn
    sweep tests against its deepest stage's own run; a depth-dropout sweep against the
    network it started from, which is also its check's full network; a width sweep against
    the network it started from: the check's full network, or the shallower network of a
    depth check that passed before it (when that is shallower than the chosen stage's).
    """
    sweep = run.sweeps[index]
    if (stored := number(sweep.get("plateau"))) is not None:
        return stored, "stored"
    if sweep["kind"] == "dropin":
        if run.stages:
            deepest = max(run.stages, key=lambda s: s["stage"])
            return 1 - deepest["test_accuracy"], f"stage {deepest['stage']}'s error"
        return None, ""
    if sweep["kind"] == "width":
        chosen_depth = (run.search.get("full") or {}).get("depth")
        for before in reversed(run.sweeps[:index]):
            check, estimate = before.get("verification"), before.get("estimate") or {}
            size = estimate.get("size")
            if before["kind"] != "width" and check and check.get("passed") and size is not None \
                    and isinstance(chosen_depth, int) and size < chosen_depth:  # fmt: skip
                return 1 - check["reduced_accuracy"], "the shallower network's error"
    full = _full_error(sweep)
    return (full, "the full network's error") if full is not None else (None, "")


def _max_rise(run: Run, sweep: dict[str, Any]) -> float | None:
    """The rise over the plateau the knee finder accepted: the record's, else the spec's
    (``search.json`` ``[width]`` for width sweeps, ``[depth]`` for the others)."""
    if (stored := number(sweep.get("max_rise"))) is not None:
        return stored
    section = run.search_spec.get("width" if sweep["kind"] == "width" else "depth")
    return number(section.get("max_rise")) if isinstance(section, dict) else None


def _hline(fig: go.Figure, x: Sequence[float], y: float, name: str, dash: str, colour: str,
           hover: str) -> None:  # fmt: skip
    fig.add_scatter(
        x=[min(x), max(x)],
        y=[y, y],
        name=name,
        mode="lines",
        line={"dash": dash, "color": colour, "width": 1.5},
        hovertemplate=f"{hover}<extra></extra>",
    )


def _sweep_figure(run: Run, index: int, title: str) -> go.Figure:
    sweep = run.sweeps[index]
    points = sorted(sweep["points"], key=lambda p: p["ratio"])
    ratios = [p["ratio"] for p in points]
    errors = [p["error"] for p in points]
    fig = go.Figure()
    fig.add_scatter(
        x=ratios,
        y=errors,
        name="test error",
        mode="lines+markers",
        hovertemplate="ratio %{x:.3f}<br>error %{y:.4f}<extra></extra>",
    )
    if all("full_error" in p for p in points):  # a depth-dropout sweep: every branch added
        fig.add_scatter(
            x=ratios,
            y=[p["full_error"] for p in points],
            name="all units (test-time rule)",
            mode="lines+markers",
            line={"dash": "dot"},
            hovertemplate="ratio %{x:.3f}<br>error, all units %{y:.4f}<extra></extra>",
        )
    if (full := _full_error(sweep)) is not None:
        _hline(fig, ratios, full, f"full network: {full:.4f}", "solid", "#7f7f7f",
               f"the full network's error {full:.4f} (the check's reference)")  # fmt: skip
    plateau, how = sweep_plateau(run, index)
    rise = _max_rise(run, sweep)
    if plateau is not None and rise is not None:
        line = plateau + rise
        hover = (
            f"knee threshold {line:.4f} = plateau {plateau:.4f} ({how}) + max_rise {rise:g}"
            "<br>a ratio is off the plateau when its error is significantly above it"
        )
        _hline(fig, ratios, line, f"plateau + max_rise: {line:.4f}", "dash", "#9467bd", hover)
    if knee := sweep.get("knee"):
        fig.add_scatter(
            x=[knee["ratio"]],
            y=[knee["error"]],
            name=f"knee at {knee['ratio']:.3g}",
            mode="markers",
            marker={"symbol": "star", "size": 16, "color": "#d62728"},
        )
    if estimate := sweep.get("estimate"):
        size, whole = estimate.get("size"), estimate.get("full_size")
        what = f" → {size}" + (f" of {whole}" if whole else "") + f" {_UNITS[sweep['kind']]}"
        fig.add_scatter(
            x=[estimate["ratio"]] * 2,
            y=[min(errors), max(errors)],
            name=f"estimate at {estimate['ratio']:.3g}" + (what if size is not None else ""),
            mode="lines",
            line={"dash": "dash", "color": "#2ca02c"},
        )
    if check := sweep.get("verification"):
        fig.add_annotation(
            text=f"verification: {'passed' if check['passed'] else 'FAILED'}<br>"
            f"full {100 * check['full_accuracy']:.2f} %, "
            f"reduced {100 * check['reduced_accuracy']:.2f} %",
            xref="paper",
            yref="paper",
            x=0.99,
            y=0.97,
            xanchor="right",
            showarrow=False,
            align="right",
            bordercolor="#2ca02c" if check["passed"] else "#d62728",
            borderwidth=2,
            bgcolor="white",
        )
    return styled(fig, title=title, x=SWEEP_AXES[sweep["kind"]], y="test error")


def sweep_figures(runs: Sequence[Run]) -> dict[str, go.Figure]:
    """Error vs ratio for each width, depth or DropIn sweep: knee, estimate and check marked,
    with the full network's error and the threshold the knee was read against."""
    figures = {}
    for r, run in enumerate(runs):
        for i, sweep in enumerate(run.sweeps):
            layer = f" of {sweep['layer']}" if sweep.get("layer") else ""
            who = f"{run.label}: " if len(runs) > 1 else ""
            title = f"{who}{sweep['kind']} sweep{layer}: error vs ratio"
            figures[f"sweep-{r}-{i}"] = _sweep_figure(run, i, title)
    return figures
