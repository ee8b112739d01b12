"""Growth versus brute force in a study's report: its ``comparison.json`` drawn and tabled.

``grownet study SPEC --compare runs/<search> ...`` writes the comparison (see
:mod:`grownet.study.compare`); this draws the study's accuracy/parameters front with every
search's recommendation on it, and the table of dominance and gaps. Its ``basis`` says which
accuracies are compared: "test" (read once, after the choices on validation), or "selected"
(a study or search from before the validation protocol: the accuracy that chose, no test read
after it); a comparison from before ``basis`` was on test.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from grownet.report import tables
from grownet.report.figures import fit_share_axis
from grownet.train.compute import format_flops

BASES = {"test": "test accuracy (read once)", "selected": "accuracy that chose (no test after)"}


def basis(data: dict[str, Any]) -> str:
    """The accuracy a comparison (or one search in it) holds, as an axis names it."""
    return BASES.get(data.get("basis"), "test accuracy")


def comparison_content(path: Path, *, label: str) -> list[Any]:
    """``[heading, table, (key, figure)]`` for ``path`` (a comparison.json), else ``[]``."""
    try:
        data = json.loads(path.read_text())
        front, searches = data["front"], data["searches"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=[p["params"] for p in front], y=[p["accuracy"] for p in front], mode="lines+markers",
        name=f"study front ({len(front)} of {data.get('trials')} trials)", line={"shape": "hv"},
    ))  # fmt: skip
    for s in searches:
        seed = "" if s.get("seed") is None else f" seed {s['seed']}"
        place = "dominated" if s["dominated"] else "on or beyond the front"
        fig.add_trace(go.Scatter(
            x=[s["params"]], y=[s["accuracy"]], mode="markers", marker={"symbol": "star",
            "size": 14}, name=f"growth{seed}: {Path(s['run']).name}",
            hovertext=[f"{basis(s)} {s['accuracy']:.4f}<br>depth {s['depth']}, widths "
                       f"{s['widths']}, {place}"],
        ))  # fmt: skip
    fig.update_layout(
        template="plotly_white", height=460, xaxis={"type": "log", "title": "parameters"},
        yaxis={"title": basis(data)},
        title={"text": f"{label}: growth recommendations on the study's front", "x": 0.01},
    )  # fmt: skip
    rows = [
        [Path(s["run"]).name, s.get("seed", "-"), f"{100 * s['accuracy']:.2f} %",
         f"{s['params']:,}", "yes" if s["dominated"] else "no",
         "-" if s["accuracy_gap"] is None else f"{100 * s['accuracy_gap']:+.2f}",
         "-" if s["params_ratio"] is None else f"{s['params_ratio']:.2f}",
         format_flops(s["train_flops"]) if s.get("train_flops") else "-",
         _ratio(s.get("compute_ratio")), _ratio(s.get("decision_ratio")),
         f"{s['train_time_s']:.0f} s", _ratio(s.get("time_ratio"))]
        for s in searches
    ]  # fmt: skip
    head = ["search", "seed", basis(data), "params", "dominated", "acc gap (points)",
            "params x at equal acc", "training compute", "compute x study",
            "compute x study without the final model", "training time",
            "time x study"]  # fmt: skip
    seconds, flops = data.get("study_train_time_s", 0), data.get("study_train_flops")
    cost = f"{seconds:.0f} s" + (f", {format_flops(flops)}" if flops else "")
    moved = data.get("front_moved")
    settled = "" if moved is None else (f"; its last quarter of trials moved the front by at "
                                        f"most {100 * moved:.2f} points")  # fmt: skip
    heading = (f"<h3>{html.escape(label)}: growth versus brute force ({cost} of training in "
               f"the study{settled})</h3>")  # fmt: skip
    return [heading, tables.table(head, rows), ("comparison", fit_share_axis(fig))]


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"
