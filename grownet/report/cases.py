"""A recipe's cases over depth: final accuracy against the depth of each case's network.

Where a recipe varies depth (LeNet(2N) over N, residual networks from 20 to 1202 layers), the
paper's figure is accuracy versus depth; this draws it from the recipe's ``summary.json`` and
each case's ``graph.json`` (depth as the papers count it: conv and linear layers), one line
per DropIn length (or "no DropIn"), a case still running drawn hollow at its last
evaluation. A paper's recipe evaluates on test; a case that held a validation split out is
labelled so (:mod:`grownet.report.splits`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from grownet.report.figures import fit_share_axis, integer_axis, styled
from grownet.report.load import Run
from grownet.report.splits import named, split_of

_WEIGHTED = ("conv", "linear")


def _depth(graph: dict[str, Any]) -> int | None:
    nodes = graph.get("nodes")
    if not isinstance(nodes, list):
        return None
    return sum(1 for n in nodes if isinstance(n, dict) and n.get("op") in _WEIGHTED)


def cases_over_depth(summary: dict[str, Any], runs: Sequence[Run]) -> dict[str, go.Figure]:
    """``{"depth": figure}`` when the recipe's finished or running cases span two depths or
    more, else ``{}``."""
    by_path = {run.path.resolve(): run for run in runs}
    series: dict[str, list[tuple[int, float, str, bool]]] = defaultdict(list)
    splits = []
    for row in summary.get("cases", []):
        if not isinstance(row, dict) or not isinstance(row.get("run_dir"), str):
            continue
        run = by_path.get(Path(row["run_dir"]).resolve())
        graph = next((data for file, data in (run.graphs if run else []) if file == "graph.json"),
                     None)  # fmt: skip
        depth = _depth(graph) if graph else None
        accuracy = row.get("final_test_accuracy")
        finished = isinstance(accuracy, int | float)
        if not finished and run and run.test:
            accuracy = run.test[-1].get("accuracy")  # a case still training: where it is
        if depth is None or not isinstance(accuracy, int | float):
            continue
        splits.append(split_of(run) if run else "test")
        length = row.get("dropin_length")
        key = "no DropIn" if length is None else f"DropIn length {length:,}"
        series[key].append((depth, float(accuracy), str(row.get("case")), finished))
    if len({d for points in series.values() for d, *_ in points}) < 2:
        return {}
    accuracy = named(splits, "accuracy")
    fig = go.Figure()
    for key, points in sorted(series.items()):
        points.sort()
        fig.add_scatter(
            x=[d for d, *_ in points],
            y=[a for _, a, *_ in points],
            mode="lines+markers",
            name=key,
            marker={"symbol": ["circle" if done else "circle-open" for *_, done in points],
                    "size": 10},
            text=[case + ("" if done else " (still training)") for _, _, case, done in points],
            hovertemplate=f"%{{text}}<br>depth %{{x}}<br>{accuracy} %{{y:.4f}}<extra></extra>",
        )  # fmt: skip
    styled(fig, title=f"{accuracy.capitalize()} vs depth over the recipe's cases (hollow: still "
           "training)", x="depth (conv and linear layers)", y=f"final {accuracy}")  # fmt: skip
    return {"depth": integer_axis(fit_share_axis(fig))}
