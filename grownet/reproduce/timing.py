"""The papers' measured time savings beside a benchmark's: the timing experiments' verdicts.

Depth dropout (Guo & Gould, Table II): ResNet-56 on CIFAR-10, 500 forward and backward passes
per network on one GPU; savings of 17.5 / 34.1 / 51.6 % at dropout ratios 0.25 / 0.5 / 0.75
over Table II's "0.0" row, the depth-dropout network at ratio 0, trainable 1x1 shortcuts and
all. So a run's saving is taken against its own p = 0 network (``skip_efficiency``), not
against the original ResNet: the paper's *theory* (12.3 / 34.6 / 56.7 %) counts from the
original ResNet, which is why its measured 17.5 % beats its theory at 0.25. Stochastic depth
(Huang et al., Sec. 3 and Table 2's training times): linear decay to p_L = 0.5 saves "about
25 %" of ResNet-110's time against the constant-depth network (approximate).

Both are timings on other hardware, so a verdict allows ``TOLERANCE`` percentage points: the
finding (how much of a step skipping saves at each ratio) travels between devices, the
milliseconds do not.

Example:
    >>> result = {"benchmark": "depth_dropout",
    ...           "rows": [{"variant": "p=0.5 skip", "ratio": 0.5, "mode": "skip", "saving": 0.2}],
    ...           "skip_efficiency": {"p=0.5 skip": {"saving": 0.33}}}
    >>> [(r["paper"], r["measured"], r["verdict"]) for r in compare_to_paper(result)]
    [('34.10 %', '33.00 %', 'reproduced')]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grownet.reproduce.recipe import PaperValue
from grownet.reproduce.verdict import compare

TOLERANCE = 5.0  # percentage points; see the module's docstring

# benchmark -> (variant prefix, dropout ratio, saving in percent, approximate, source)
PAPER_SAVINGS: dict[str, list[tuple[str, float, float, bool, str]]] = {
    "depth_dropout": [
        ("p=", 0.25, 17.5, False, "depth dropout Table II (GPU), over p = 0"),
        ("p=", 0.5, 34.1, False, "depth dropout Table II (GPU), over p = 0"),
        ("p=", 0.75, 51.6, False, "depth dropout Table II (GPU), over p = 0"),
    ],
    "stochastic_depth": [
        ("linear", 0.5, 25.0, True, "stochastic depth Sec. 3, Table 2 (GPU)"),
    ],
}


def _measured(result: dict[str, Any], row: dict[str, Any]) -> float | None:
    """The row's saving against the baseline the paper measured against (percent)."""
    if result["benchmark"] == "depth_dropout":
        against_p0 = (result.get("skip_efficiency") or {}).get(row["variant"])
        return None if against_p0 is None else 100.0 * against_p0["saving"]
    return 100.0 * row["saving"]


def compare_to_paper(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per skip-mode row of a bench result the paper measured: paper, measured,
    difference, verdict.

    Mask-mode rows compute every branch and are not the papers' method; rows at ratios the
    papers did not time have no paper value and are left out.
    """
    out = []
    for prefix, ratio, value, approx, source in PAPER_SAVINGS.get(result["benchmark"], []):
        for row in result["rows"]:
            if row["mode"] != "skip" or abs(row["ratio"] - ratio) > 1e-9:
                continue
            if not row["variant"].startswith(prefix):
                continue
            paper = PaperValue("time_saving", value, approx, TOLERANCE, source=source)
            c = compare(paper, _measured(result, row))
            out.append({"variant": row["variant"], "paper": c.paper, "measured": c.measured,
                        "difference": c.difference, "verdict": c.verdict, "source": source,
                        "tolerance_pp": TOLERANCE})  # fmt: skip
    return out


def format_comparison(entries: Sequence[dict[str, Any]]) -> list[str]:
    """The console lines of :func:`compare_to_paper`'s entries (none when it found none)."""
    if not entries:
        return []
    lines = [f"paper vs measured (time saving over the paper's baseline, tolerance "
             f"{TOLERANCE:g} pp):"]
    for e in entries:
        lines.append(f"  {e['variant']:24s} paper {e['paper']:>9s}  measured {e['measured']:>8s}  "
                     f"{e['difference']:>9s}  {e['verdict']}  [{e['source']}]")  # fmt: skip
    return lines
