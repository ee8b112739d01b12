"""Plotly figures of a run's numbers: learning curves and benchmarks, and the common look.

A growth search's figures (stages, sweeps, time on the search's clock) are in
:mod:`grownet.report.growth`, an Optuna study's in :mod:`grownet.report.studies`.

Each builder takes loaded runs (:class:`grownet.report.load.Run`) and returns its figures keyed
by an id that is stable across reports (``accuracy``, ``sweep-0-1`` ...), and nothing when no
run has the data. A run keeps one colour in every figure; its legend entries share a group, so
one click hides all of a run's lines.

Example:
    >>> from pathlib import Path
    >>> from grownet.report.load import Run
    >>> run = Run(path=Path("r"), label="r", test=[
    ...     {"kind": "test", "iteration": 20, "loss": 1.4, "accuracy": 0.4, "wall_time_s": 0.3},
    ...     {"kind": "test", "iteration": 40, "loss": 0.4, "accuracy": 0.9, "wall_time_s": 0.6}])
    >>> fig = learning_curves([run])["accuracy"]
    >>> [(t.name, list(t.x), list(t.y)) for t in fig.data], fig.layout.title.text
    ([('r test', [20, 40], [0.4, 0.9])], 'Accuracy (test solid, train dotted)')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative, sample_colorscale
from plotly.subplots import make_subplots

from grownet.report.load import Run, number
from grownet.report.splits import common, split_of, word

PALETTE = qualitative.Plotly + qualitative.D3


def colours(runs: Sequence[Run]) -> dict[str, str]:
    """One colour per run label, the same in every figure of a report."""
    return {run.label: PALETTE[i % len(PALETTE)] for i, run in enumerate(runs)}


def styled(fig: go.Figure, *, title: str, x: str, y: str, height: int = 440) -> go.Figure:
    """The report's common look; titles the x axis and the (first) y axis."""
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0.01},
        height=height,
        margin={"l": 70, "r": 30, "t": 60, "b": 55},
        legend={"groupclick": "togglegroup"},
        hovermode="closest",
        xaxis_title_text=x,
        yaxis_title_text=y,
    )
    return fig


# A share (accuracy, error) fitted to its data stays inside the 0-1 scale, with the room the
# whole scale's range gives a marker at 0 or 1 (drawn whole, not cut in half by the frame).
SHARE_LIMITS = (-0.02, 1.02)
_TICKS = 8  # at most this many ticks on a count axis, so its labels never crowd


def visible_scale(name: str, low: float = 0.0, high: float = 1.0) -> list[list[Any]]:
    """The part ``low`` to ``high`` of plotly's colour scale ``name``: a scale's pale end
    (Blues and Reds start near white, Viridis ends in a light yellow) drew points that vanish
    on the white page.

    Example:
        >>> visible_scale("Blues", 0.4)[0]
        [0.0, 'rgb(148, 196, 223)']
    """
    steps = 8
    at = [low + (high - low) * i / steps for i in range(steps + 1)]
    return [[i / steps, c] for i, c in enumerate(sample_colorscale(name, at))]


def _axis_values(fig: go.Figure, axis: str) -> list[float]:
    """Every finite value the traces put on the primary ``axis`` ("x" or "y"), error bars'
    ends included; traces on a secondary axis (the DropIn q) are not counted."""
    values: list[float] = []
    for trace in fig.data:
        if getattr(trace, f"{axis}axis", None) not in (None, axis):
            continue
        points = [number(v) for v in getattr(trace, axis) or ()]
        bars = getattr(trace, f"error_{axis}", None)
        up = (bars.array if bars and bars.array is not None else None) or [0] * len(points)
        down = (bars.arrayminus if bars and bars.arrayminus is not None else None) or up
        for v, a, b in zip(points, up, down, strict=False):
            if v is not None:
                values += [v + (number(a) or 0), v - (number(b) or 0)]
    return values


def _fitted(values: Sequence[float], bottom: float, top: float = math.inf) -> list[float]:
    """An axis range around ``values`` with a little room, within ``bottom`` and ``top``."""
    low, high = min(values), max(values)
    room = max(0.08 * (high - low), 0.01)
    return [max(low - room, bottom), min(high + room, top)]


def fit_share_axis(fig: go.Figure) -> go.Figure:
    """The y axis of an accuracy or error fitted to the data with a little room, within
    :data:`SHARE_LIMITS`: on a fixed 0-1 axis, curves between 90 and 99 % sit flat at the top."""
    values = _axis_values(fig, "y")
    if values:
        fig.update_layout(yaxis_range=_fitted(values, *SHARE_LIMITS))
    return fig


def integer_step(span: float, most: int = _TICKS) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50 ... that puts at most ``most`` ticks on ``span``.

    Example:
        >>> integer_step(4), integer_step(30), integer_step(1200)
        (1, 5, 200)
    """
    scale = 1
    while True:
        for step in (scale, 2 * scale, 5 * scale):
            if span / step <= most:
                return step
        scale *= 10


def integer_axis(fig: go.Figure, axis: str = "x") -> go.Figure:
    """Ticks on whole numbers only, for an axis of counts (depth, layers, stages): plotly's own
    ticks put a depth at 3.5."""
    values = _axis_values(fig, axis)
    span = max(values) - min(values) if values else 0
    fig.update_layout({f"{axis}axis": {"tick0": 0, "dtick": integer_step(span), "tickformat": "d"}})
    return fig


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float | None]]:
    """Iterations and values of ``key``; a non-finite value (a diverged loss) becomes a gap."""
    return [r["iteration"] for r in records], [number(r.get(key)) for r in records]


# --------------------------------------------------------------------------- learning curves


def _q_groups(train: Sequence[dict[str, Any]]) -> list[tuple[list[str], list[int], list[float]]]:
    """DropIn units with identical q schedules, merged: usually one line per run, not eight."""
    units: dict[str, None] = {}
    for record in train:
        units.update(dict.fromkeys(record.get("dropin_q") or {}))
    groups: dict[tuple[tuple[int, float], ...], list[str]] = {}
    for unit in units:
        points = tuple(
            (r["iteration"], q)
            for r in train
            if (q := number((r.get("dropin_q") or {}).get(unit))) is not None
        )
        groups.setdefault(points, []).append(unit)
    return [([*names], [i for i, _ in pts], [q for _, q in pts]) for pts, names in groups.items()]


def _add_curves(fig: go.Figure, run: Run, colour: str, key: str) -> None:
    # metrics.jsonl calls every evaluation "test", whichever split it read: named by the run's.
    evaluated = word(split_of(run))
    for kind, records, dash in ((evaluated, run.test, "solid"), ("train", run.train, "dot")):
        if not records:
            continue
        x, y = _series(records, key)
        extra = ""
        if kind == "train":
            custom = [[number(r.get("lr")), number(r.get("images_per_s"))] for r in records]
            extra = "<br>lr %{customdata[0]:.3g}<br>%{customdata[1]:.0f} images/s"
        else:
            custom = None
        fig.add_scatter(
            x=x,
            y=y,
            name=f"{run.label} {kind}",
            legendgroup=run.label,
            mode="lines+markers" if kind == evaluated else "lines",
            line={"color": colour, "dash": dash, "width": 2 if kind == evaluated else 1.5},
            customdata=custom,
            hovertemplate=f"{run.label} {kind}<br>iteration %{{x}}<br>{key} %{{y:.4f}}{extra}"
            "<extra></extra>",
        )


def learning_curves(runs: Sequence[Run]) -> dict[str, go.Figure]:
    """Evaluation (solid: validation or test, as each run evaluated) and train (dotted)
    accuracy and loss vs iteration, one colour per run; the DropIn ratio q (share of units
    still taking the old layer) on a secondary axis."""
    shown = [r for r in runs if r.train or r.test]
    if not shown:
        return {}
    palette = colours(runs)
    q_groups = {run.label: _q_groups(run.train) for run in shown}
    has_q = any(q_groups.values())
    accuracy = make_subplots(specs=[[{"secondary_y": True}]]) if has_q else go.Figure()
    loss = go.Figure()
    for run in shown:
        colour = palette[run.label]
        _add_curves(accuracy, run, colour, "accuracy")
        _add_curves(loss, run, colour, "loss")
        for names, x, q in q_groups[run.label]:
            more = f" (+{len(names) - 1} units)" if len(names) > 1 else ""
            accuracy.add_trace(
                go.Scatter(
                    x=x,
                    y=q,
                    name=f"{run.label} q {names[0]}{more}",
                    legendgroup=run.label,
                    mode="lines",
                    line={"color": colour, "dash": "dash", "width": 1},
                    opacity=0.7,
                    hovertemplate=f"{run.label}: DropIn q of {', '.join(names)}"
                    "<br>iteration %{x}<br>q %{y:.4f}<extra></extra>",
                ),
                secondary_y=True,
            )
    solid = common([r for r in shown if r.test], "solid")
    styled(accuracy, title=f"Accuracy ({solid}, train dotted)", x="iteration", y="accuracy")
    fit_share_axis(accuracy)
    if has_q:
        accuracy.update_layout(
            yaxis2={"title_text": "DropIn q (dashed)", "range": [-0.02, 1.02], "showgrid": False}
        )
    styled(loss, title=f"Loss ({solid}, train dotted)", x="iteration", y="cross-entropy loss")
    if all(r.test and all("bits" in t for t in r.test) for r in shown):
        bits_axis(loss)
    return {"accuracy": accuracy, "loss": loss}


def bits_axis(fig: go.Figure) -> go.Figure:
    """A language model's loss figure read in both units: nats per token on the left, bits
    per token (nats / ln 2, the unit of character-level papers) on the right, on one scale.

    Example:
        >>> fig = bits_axis(go.Figure(go.Scatter(x=[0, 1], y=[math.log(2), 2 * math.log(2)])))
        >>> [round(v, 3) for v in fig.layout.yaxis2.range]
        [0.92, 2.08]
    """
    values = [v for v in _axis_values(fig, "y") if math.isfinite(v)]
    if not values:
        return fig
    nats = _fitted(values, 0.0)
    # Plotly draws an axis only under a trace: an unseen one carries the right-hand scale.
    fig.add_scatter(x=[None], y=[None], yaxis="y2", showlegend=False, hoverinfo="skip")
    fig.update_layout(
        yaxis={"range": nats, "title_text": "cross-entropy, nats per token"},
        yaxis2={"range": [v / math.log(2) for v in nats], "overlaying": "y", "side": "right",
                "title_text": "bits per token", "showgrid": False},
        margin={"r": 70},
    )  # fmt: skip
    return fig


def _layer_order(records: Sequence[dict[str, Any]]) -> list[str]:
    """The layers of the largest network the records measured, in its order; then any other
    (a grown network's records name more layers as it grows, a thinned one's fewer)."""
    names = sorted((list(r["signal"]) for r in records), key=len, reverse=True)
    return list(dict.fromkeys(name for layers in names for name in layers))


def signal_maps(runs: Sequence[Run]) -> dict[str, go.Figure]:
    """Per run that recorded it: every weight layer's signal (how much its output depends on
    the input, :mod:`grownet.train.signal`) at each test, log scale. A layer where it falls by
    orders of magnitude is where the network lost the input (a collapse to the majority class)."""
    figs = {}
    for i, run in enumerate(runs):
        records = [r for r in run.test if isinstance(r.get("signal"), dict) and r["signal"]]
        if not records:
            continue
        layers = _layer_order(records)
        values = [[number(r["signal"].get(name)) for r in records] for name in layers]
        logs = [[math.log10(v) if v else None for v in row] for row in values]
        fig = go.Figure(
            go.Heatmap(
                x=[r["iteration"] for r in records],
                y=layers,
                z=logs,
                customdata=values,
                colorscale="Viridis",
                colorbar={"title": {"text": "log10 signal"}},
                hoverongaps=False,
                hovertemplate="%{y}<br>iteration %{x}<br>signal %{customdata:.3g}<extra></extra>",
            )
        )
        batch = f"std across the {word(split_of(run))} batch"
        styled(fig, title=f"{run.label}: signal per layer ({batch})",
               x="iteration", y="layer (input at the top)",
               height=max(300, 160 + 14 * len(layers)))  # fmt: skip
        fig.update_yaxes(autorange="reversed", type="category")
        figs[f"signal-{i}"] = fig
    return figs


# --------------------------------------------------------------------------- benchmarks


def _saving_figure(bench: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    rows = sorted(bench["rows"], key=lambda row: row["ratio"])
    for i, mode in enumerate(dict.fromkeys(row["mode"] for row in rows)):
        mine = [row for row in rows if row["mode"] == mode]
        fig.add_scatter(
            x=[row["ratio"] for row in mine],
            y=[row["saving"] for row in mine],
            name="baseline" if mode == "-" else f"measured, {mode}",
            mode="lines+markers",
            marker={"size": 9, "color": PALETTE[i % len(PALETTE)]},
            customdata=[
                [row.get("variant", ""), row["forward_ms"], row["backward_ms"], row["total_ms"]]
                for row in mine
            ],
            hovertemplate="%{customdata[0]}<br>ratio %{x}<br>saving %{y:.1%}"
            "<br>forward %{customdata[1]:.1f} ms<br>backward %{customdata[2]:.1f} ms"
            "<br>total %{customdata[3]:.1f} ms<extra></extra>",
        )
    for key, name, dash in (("theory_saving", "theory", "dash"),
                            ("paper_theory_saving", "paper's theory", "dot")):  # fmt: skip
        theory = {row["ratio"]: row[key] for row in rows if row.get(key) is not None}
        if theory:
            fig.add_scatter(
                x=list(theory),
                y=list(theory.values()),
                name=name,
                mode="lines+markers",
                line={"dash": dash, "color": "black"},
                marker={"symbol": "x"},
                hovertemplate=f"{name}<br>ratio %{{x}}<br>saving %{{y:.1%}}<extra></extra>",
            )
    title = f"Time saving vs dropout ratio: {bench['benchmark']} on {bench.get('model', '?')}"
    styled(fig, title=title, x="dropout ratio", y="time saving per step")
    fig.update_yaxes(tickformat=".0%")
    return fig


def _time_figure(bench: dict[str, Any]) -> go.Figure:
    rows = bench["rows"]
    names = [row.get("variant") or f"{row['ratio']:g} {row['mode']}" for row in rows]
    fig = go.Figure()
    for key, colour in (("forward_ms", "#1f77b4"), ("backward_ms", "#ff7f0e")):
        fig.add_bar(
            x=names,
            y=[row[key] for row in rows],
            name=key.removesuffix("_ms"),
            marker_color=colour,
            hovertemplate="%{x}<br>" + key.removesuffix("_ms") + " %{y:.1f} ms<extra></extra>",
        )
    fig.update_layout(barmode="stack")
    return styled(fig, title=f"Time per training step: {bench['benchmark']}", x="variant",
                  y="ms per step (median)")  # fmt: skip


def bench_figures(bench: dict[str, Any], *, key: str) -> dict[str, go.Figure]:
    """A benchmark with rows: saving vs ratio beside the theory, and time per step."""
    if not bench.get("rows"):
        return {}
    return {f"bench-saving-{key}": _saving_figure(bench), f"bench-time-{key}": _time_figure(bench)}
