"""The papers' measured time savings beside a benchmark's: the timing experiments' verdicts.

Depth dropout (Guo & Gould, Table II): ResNet-56 on CIFAR-10, 500 forward and backward passes
per network on one GPU; savings over the baseline of 17.5 / 34.1 / 51.6 % at dropout ratios
0.25 / 0.5 / 0.75 (its text; Table II's milliseconds give the same). Stochastic depth (Huang et
al., Sec. 3 and Table 2's training times): linear decay to p_L = 0.5 saves "about 25 %" of
ResNet-110's training time (approximate).

Both are timings on other hardware, so a verdict needs a tolerance wider than a test error's:
``TOLERANCE`` percentage points, because the papers' own measurements sit that far from their
own theory (17.5 % measured against 12.3 % at p = 0.25). What reproduces is the finding —
the saving grows with the ratio as the theory says — not the paper's milliseconds.

Example:
    >>> rows = [{"variant": "p=0.5 skip", "ratio": 0.5, "mode": "skip", "saving": 0.30}]
    >>> [(r["paper"], r["measured"], r["verdict"]) for r in compare_to_paper("depth_dropout", rows)]
    [('34.10 %', '30.00 %', 'reproduced')]
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
        ("p=", 0.25, 17.5, False, "depth dropout Table II (GPU)"),
        ("p=", 0.5, 34.1, False, "depth dropout Table II (GPU)"),
        ("p=", 0.75, 51.6, False, "depth dropout Table II (GPU)"),
    ],
    "stochastic_depth": [
        ("linear", 0.5, 25.0, True, "stochastic depth Sec. 3, Table 2 (GPU)"),
    ],
}


def compare_to_paper(benchmark: str, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per skip-mode row the paper measured: paper, measured, difference, verdict.

    Mask-mode rows compute every branch and are not the papers' method; rows at ratios the
    papers did not time have no paper value and are left out.
    """
    out = []
    for prefix, ratio, value, approx, source in PAPER_SAVINGS.get(benchmark, []):
        for row in rows:
            if row["mode"] != "skip" or abs(row["ratio"] - ratio) > 1e-9:
                continue
            if not row["variant"].startswith(prefix):
                continue
            paper = PaperValue("time_saving", value, approx, TOLERANCE, source=source)
            c = compare(paper, 100.0 * row["saving"])
            out.append({"variant": row["variant"], "paper": c.paper, "measured": c.measured,
                        "difference": c.difference, "verdict": c.verdict, "source": source,
                        "tolerance_pp": TOLERANCE})  # fmt: skip
    return out


def format_comparison(entries: Sequence[dict[str, Any]]) -> list[str]:
    """The console lines of :func:`compare_to_paper`'s entries (none when it found none)."""
    if not entries:
        return []
    lines = [f"paper vs measured (time saving over the baseline, tolerance {TOLERANCE:g} pp):"]
    for e in entries:
        lines.append(f"  {e['variant']:24s} paper {e['paper']:>9s}  measured {e['measured']:>8s}  "
                     f"{e['difference']:>9s}  {e['verdict']}  [{e['source']}]")  # fmt: skip
    return lines
