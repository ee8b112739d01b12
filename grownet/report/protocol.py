"""A growth search's answer on the page: its protocol, the networks it reports and how sure its
estimates are, every number beside the split it was read on.

Under the validation protocol (``search_summary.json`` ``protocol``, :mod:`grownet.search.summary`)
every decision read the validation split, and the test split was read once per reported network
after the decisions: the recommendation, the full network and each final model have one number
of each. A search from before the protocol decided on one split (test, unless its training
held a validation split out) and has one number per network, which also chose it.

Example:
    >>> from pathlib import Path
    >>> rec = {"depth": 3, "params": 900, "accuracy": 0.9, "split": "val",
    ...        "test_accuracy": 0.88, "n_test": 1000, "run": "s/verify/full"}
    >>> summary = {"protocol": {"decisions": "val", "n_val": 500, "n_test": 1000,
    ...                         "held_out": "held out of the training set"},
    ...            "n_val": 500, "recommended": rec, "full": rec}
    >>> run = Run(path=Path("s"), label="s", search=summary)
    >>> text = "".join(search_content(run))
    >>> "validation accuracy (500 samples)" in text, "<td>88.00 %</td>" in text
    (True, True)
"""

from __future__ import annotations

import html
from typing import Any

from grownet.report.load import Run, number
from grownet.report.splits import eval_samples, samples_text, split_of, word
from grownet.report.tables import count, percent, table
from grownet.train.compute import format_flops


def _protocol(run: Run) -> str:
    """What read which split, in a sentence."""
    p = run.search.get("protocol")
    if not isinstance(p, dict):
        return (
            f"<p>Decisions read the {word(split_of(run))} split: a search from before the "
            "validation protocol, so each accuracy below both chose its network and measured "
            "it; no split was read after the decisions.</p>"
        )
    if p.get("decisions") != "val":
        return "<p>Decisions read the test split: no validation split was held out.</p>"
    held = html.escape(str(p.get("held_out") or ""))
    return (
        f"<p>Decisions read the <b>validation</b> split ({count(p.get('n_val'))} samples, "
        f"{held}); the <b>test</b> split ({count(p.get('n_test'))} samples) was read once per "
        "reported network, after every decision.</p>"
    )


def _heading(what: str, n: Any) -> str:
    """``"validation accuracy (500 samples)"``; without the count when it is unknown."""
    return f"{what} ({n:,} samples)" if isinstance(n, int) and n > 0 else what


def _networks(run: Run) -> str:
    """The reported networks, one row each: the decision split's accuracy and, where it was
    read, the test split's; the final models' chosen start marked, and where it was saved."""
    s = run.search
    decided = word(split_of(run))
    rows: list[list[Any]] = []
    for key, name in (("recommended", "recommended"), ("full", "full (the chosen depth)"),
                      ("best", f"best seen (chosen on {decided})")):  # fmt: skip
        if isinstance(e := s.get(key), dict):
            # "best seen" is chosen on the decision split, and the test split is not read for it
            tested = percent(e["test_accuracy"]) if "test_accuracy" in e else "not read"
            rows.append([name, count(e.get("depth")), count(e.get("params")),
                         percent(e.get("accuracy")), tested, e.get("run") or "-"])  # fmt: skip
    final = s.get("final") if isinstance(s.get("final"), dict) else {}
    chosen = (final.get("chosen") or {}).get("start")
    rec = s.get("recommended") or {}
    for r in final.get("runs") or []:
        name = f"final, {r.get('start')} weights"
        if r.get("start") == chosen:
            name = (f"{name} (chosen)", "good")
        rows.append([name, count(rec.get("depth")), count(rec.get("params")),
                     percent(r.get("val_accuracy")), percent(r.get("test_accuracy")),
                     r.get("run") or "-"])  # fmt: skip
    if not rows:
        return ""
    n_test = rec.get("n_test") or (s.get("protocol") or {}).get("n_test")
    head = ["network", "depth", "parameters", _heading(f"{decided} accuracy", eval_samples(run)[0]),
            _heading("test accuracy, read once", n_test), "run"]  # fmt: skip
    if "test_accuracy" not in rec:  # a search from before the protocol read no split after
        head, rows = head[:4] + head[5:], [row[:4] + row[5:] for row in rows]
    out = table(head, rows)
    if model := final.get("model"):
        out += (
            f"<p>The final model: <code>{html.escape(str(model))}</code> (graph.json, "
            f"weights.pt, config.json), {count(final.get('iters'))} iterations from "
            f"{html.escape(str(chosen))} weights, chosen on {decided}.</p>"
        )
    return out


def _level(run: Run) -> tuple[float, Any]:
    """The intervals' coverage and replicates (the same for every sweep of a search)."""
    for sweep in run.search.get("sweeps") or []:
        interval = sweep.get("interval") if isinstance(sweep, dict) else None
        if isinstance(interval, dict) and number(interval.get("level")) is not None:
            return interval["level"], interval.get("replicates", "?")
    return 0.9, "?"


def _intervals(run: Run) -> str:
    """The recommended depth and widths beside their bootstrap intervals, and the checks that
    were close calls."""
    s = run.search
    rec = s.get("recommended") or {}
    level, replicates = _level(run)
    rows = []
    if isinstance(depth := s.get("depth_interval"), list) and len(depth) == 2:
        sweeps = s.get("sweeps") or []
        unit = "residual units" if any(w.get("kind") == "depth" for w in sweeps) else "layers"
        rows.append(["depth", f"{count(rec.get('depth'))} weighted layers",
                     f"{depth[0]} to {depth[1]} {unit}"])  # fmt: skip
    widths = s.get("width_interval")
    heads = rec.get("heads") or {}  # an attention layer's width is its heads
    for layer, ends in widths.items() if isinstance(widths, dict) else ():
        what, unit = ("heads", "heads") if layer in heads else ("width", "channels")
        chosen = heads[layer] if layer in heads else (rec.get("widths") or {}).get(layer)
        rows.append([f"{what} of {layer}", f"{count(chosen)} {unit}",
                     f"{ends[0]} to {ends[1]} {unit}"])  # fmt: skip
    closes = [
        f"the check of the {w.get('kind')} sweep{' of ' + w['layer'] if w.get('layer') else ''}: "
        f"{w['close_call']}"
        for w in s.get("sweeps") or []
        if isinstance(w, dict) and w.get("close_call")
    ]
    if not rows and not closes:
        return ""
    n, _ = eval_samples(run)
    over = f" of the {samples_text(n, split_of(run))}" if n else ""
    out = (
        f"<p>How sure: the central {100 * level:g} % of the sweeps' estimates over "
        f"{replicates} bootstrap replicates{over}.</p>"
    )
    if rows:
        out += table(["estimate", "recommended", f"{100 * level:g} % interval"], rows)
    if closes:
        out += "<ul class='notes'>" + "".join(f"<li>{html.escape(c)}</li>" for c in closes)
        out += "</ul>"
    return out


def _cost(run: Run) -> str:
    """What the search cost: training compute (machine-independent) and seconds beside it."""
    c = run.search.get("compute")
    if not isinstance(c, dict) or not isinstance(c.get("train_flops"), int | float):
        return ""
    seconds = number(run.search.get("train_time_s"))
    passes = c.get("forward_flops") or 0
    extra = f", {format_flops(passes)} of it forward-only (one-shot sweeps)" if passes else ""
    return (
        f"<p>Cost: {format_flops(c['train_flops'])} of training compute (iterations x FLOPs "
        f"per iteration, forward and backward, {count(c.get('iterations'))} iterations over "
        f"{count(c.get('runs'))} runs{extra})"
        + (f", {seconds:.0f} s of training on this machine" if seconds is not None else "")
        + ".</p>"
    )


def search_content(run: Run) -> list[str]:
    """The search's part of the report's search section, in reading order: its protocol, the
    reported networks, the intervals, and ``summary.txt`` as the search printed it."""
    out = [f"<h3>{html.escape(run.label)}</h3>", _protocol(run), _networks(run), _intervals(run),
           _cost(run)]  # fmt: skip
    if run.search_summary:
        out.append(f"<pre>{html.escape(run.search_summary)}</pre>")
    return [item for item in out if item]
