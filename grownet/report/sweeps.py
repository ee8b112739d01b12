"""Figures of a growth search's sweeps: error vs ratio, the knee, its interval and its check.

Each width, depth or DropIn sweep of ``sweeps.json`` is one figure: the error at each swept
ratio (on the split the search's decisions read, named on the axis), the full network's
error and the threshold the knee was read against, the knee, the knee's bootstrap interval
(a shaded band across the ratios it spans), the estimate and its check.

Example:
    >>> from pathlib import Path
    >>> from grownet.report.load import Run
    >>> sweep = {"kind": "width", "layer": "conv1", "knee": None, "estimate": None,
    ...          "verification": None, "points": [{"ratio": 0.5, "error": 0.1},
    ...                                           {"ratio": 1.0, "error": 0.08}],
    ...          "interval": {"low_ratio": 0.5, "high_ratio": 1.0, "level": 0.9}}
    >>> run = Run(path=Path("s"), label="s", sweeps=[sweep],
    ...           dataset={"sizes": {"val": 400, "test": 1000}})
    >>> fig = sweep_figures([run])["sweep-0-0"]
    >>> [t.name for t in fig.data], fig.layout.yaxis.title.text
    (['validation error', '90 % interval: 0.5 to 1'], 'validation error')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from grownet.report.figures import fit_share_axis, styled
from grownet.report.load import Run, number
from grownet.report.splits import eval_samples, samples_text, split_of, word
from grownet.search.sweeps import close_call

SWEEP_AXES = {
    "width": "width dropout ratio",
    "depth": "depth dropout ratio",
    "dropin": "DropIn ratio",
}
_UNITS = {"width": "channels", "depth": "weighted layers", "dropin": "weighted layers"}
# The interval's ends of a depth-dropout sweep count residual units, not layers.
_INTERVAL_UNITS = _UNITS | {"depth": "residual units"}
_BAND = {"line": "rgba(214, 39, 40, 0.55)", "fill": "rgba(214, 39, 40, 0.12)"}


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


def _ends(sweep: dict[str, Any], interval: dict[str, Any]) -> str:
    """The interval's ends as sizes: ``"8 to 12 channels"`` (summed over the swept layers),
    ``"3 to 5 residual units"``; ``""`` when the record has none (an older file)."""
    if isinstance(low := interval.get("low_channels"), dict) and low:
        high = interval.get("high_channels") or {}
        return f"{sum(low.values())} to {sum(high.values())} {_UNITS['width']}"
    if interval.get("low_size") is not None:
        unit = _INTERVAL_UNITS[sweep["kind"]]
        return f"{interval['low_size']} to {interval.get('high_size')} {unit}"
    return ""


def _interval_band(fig: go.Figure, sweep: dict[str, Any], span: tuple[float, float],
                   samples: str) -> None:  # fmt: skip
    """The knee's bootstrap interval: a band over the ratios it spans (a line when it is one
    ratio), the whole height of the curve; its hover says what was resampled, and flags a
    check whose verdict stood within two samples of its threshold."""
    interval = sweep["interval"]
    low, high = interval["low_ratio"], interval["high_ratio"]
    a, b = sorted((low, high))  # low_ratio is the smaller network's end, not the smaller ratio
    level = f"{100 * interval['level']:g} %"
    over = f" over {samples}" if samples else ""
    paired = interval.get("paired")
    how = {True: ", resampled sample by sample", False: ", resampled from the error counts"}
    ends = _ends(sweep, interval)
    lines = [
        f"the knee's {level} bootstrap interval{over}",
        f"ratio {low:g} (smaller network) to {high:g}" + (f": {ends}" if ends else ""),
        f"{interval.get('replicates', '?')} replicates{how.get(paired, '')}",
    ]
    if close := close_call(sweep.get("verification") or {}).strip(" ()"):
        lines.append(f"check: {close}")
    hover = "<br>".join(lines)
    bottom, top = span
    fig.add_scatter(
        x=[a, b, b, a, a],
        y=[bottom, bottom, top, top, bottom],
        name=f"{level} interval: {low:g} to {high:g}",
        mode="lines",
        fill="toself",
        fillcolor=_BAND["fill"],
        line={"color": _BAND["line"], "width": 1},
        hoveron="fills+points",
        text=hover,  # what plotly shows over the fill, which ignores hovertemplate
        hovertemplate=f"{hover}<extra></extra>",
    )


def _check_note(fig: go.Figure, check: dict[str, Any], split: str) -> None:
    close = close_call(check).strip(" ()")
    text = (
        f"verification: {'passed' if check['passed'] else 'FAILED'}<br>"
        f"full {100 * check['full_accuracy']:.2f} %, "
        f"reduced {100 * check['reduced_accuracy']:.2f} % ({word(split)})"
        + (f"<br>{close}" if close else "")
    )
    fig.add_annotation(
        text=text,
        hovertext=text,
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


def _sweep_figure(run: Run, index: int, title: str) -> go.Figure:
    sweep = run.sweeps[index]
    every = sorted(sweep["points"], key=lambda p: p["ratio"])
    points = [p for p in every if p.get("error") is not None]  # stopped ones were never read
    stopped = [p["ratio"] for p in every if p.get("error") is None]
    ratios = [p["ratio"] for p in points]
    errors = [p["error"] for p in points]
    split = split_of(run)
    error = f"{word(split)} error"
    fig = go.Figure()
    fig.add_scatter(
        x=ratios,
        y=errors,
        name=error,
        mode="lines+markers",
        hovertemplate=f"ratio %{{x:.3f}}<br>{error} %{{y:.4f}}<extra></extra>",
    )
    if stopped:
        fig.add_scatter(
            x=stopped, y=[max(errors)] * len(stopped), name="stopped early (not trained)",
            mode="markers", marker={"symbol": "x-thin-open", "size": 10, "color": "#7f7f7f"},
            hovertemplate=("ratio %{x:.3f}: stopped, not trained: the ratios above it had "
                           "settled the knee<extra></extra>"),
        )  # fmt: skip
    if all("full_error" in p for p in points):  # a depth-dropout sweep: every branch added
        fig.add_scatter(
            x=ratios,
            y=[p["full_error"] for p in points],
            name="all units (test-time rule)",
            mode="lines+markers",
            line={"dash": "dot"},
            hovertemplate=f"ratio %{{x:.3f}}<br>{error}, all units %{{y:.4f}}<extra></extra>",
        )
    if sweep.get("interval"):
        check = sweep.get("verification") or {}
        n = check.get("n") or eval_samples(run)[0]
        _interval_band(fig, sweep, (min(errors), max(errors)), samples_text(n, split))
    if (full := _full_error(sweep)) is not None:
        _hline(fig, ratios, full, f"full network: {full:.4f}", "solid", "#7f7f7f",
               f"the full network's {error} {full:.4f} (the check's reference)")  # fmt: skip
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
        _check_note(fig, check, split)
    return fit_share_axis(styled(fig, title=title, x=SWEEP_AXES[sweep["kind"]], y=error))


def sweep_figures(runs: Sequence[Run]) -> dict[str, go.Figure]:
    """Error vs ratio for each width, depth or DropIn sweep: knee, its interval, estimate and
    check marked, with the full network's error and the threshold the knee was read against."""
    figures = {}
    for r, run in enumerate(runs):
        for i, sweep in enumerate(run.sweeps):
            layer = f" of {sweep['layer']}" if sweep.get("layer") else ""
            who = f"{run.label}: " if len(runs) > 1 else ""
            title = f"{who}{sweep['kind']} sweep{layer}: {word(split_of(run))} error vs ratio"
            figures[f"sweep-{r}-{i}"] = _sweep_figure(run, i, title)
    return figures
