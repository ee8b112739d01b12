"""HTML tables of a report: the runs, paper vs measured, benchmarks and provenance.

Tables are plain HTML, not plotly figures, so they can be read, searched and copied. Every
value is escaped; a table wider than the page scrolls sideways in its own box.

Example:
    >>> html_text = table(["a", "b"], [["<1>", ("yes", "good")]])
    >>> "<td>&lt;1&gt;</td>" in html_text, '<td class="good">yes</td>' in html_text
    (True, True)
"""

from __future__ import annotations

import html
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grownet.graph import GraphError, NetGraph
from grownet.report.load import Run, number
from grownet.report.splits import answer_split, word
from grownet.reproduce.timing import compare_to_paper
from grownet.train.config import TrainConfig

# Settings that name or place a run rather than change what it computes.
_NOT_A_VARIANT = {"name", "runs_dir", "quiet", "data_dir", "download", "checkpoint_interval"}


def table(head: Sequence[str], rows: Sequence[Sequence[Any]], *, cls: str = "") -> str:
    """An HTML table; cells are escaped, and a cell given as ``(text, class)`` gets a class."""
    attr = f' class="{html.escape(cls)}"' if cls else ""
    out = [f"<div class='wide'><table{attr}><thead><tr>"]
    out += [f"<th>{html.escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for cell in row:
            text, klass = cell if isinstance(cell, tuple) else (cell, "")
            attr = f' class="{klass}"' if klass else ""
            out.append(f"<td{attr}>{html.escape(str(text))}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def percent(value: Any) -> str:
    """``0.9022 -> "90.22 %"``; missing or non-finite -> ``"n/a"``."""
    x = number(value)
    return "n/a" if x is None else f"{100 * x:.2f} %"


def seconds(value: Any) -> str:
    x = number(value)
    return "n/a" if x is None else f"{x:,.1f} s"


def count(value: Any) -> str:
    """``10000 -> "10,000"``; None -> ``"-"``; anything else as written."""
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _flat_config(config: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in config.items() if k != "model_options"}
    flat |= dict(config.get("model_options") or {})  # builder options count as settings
    return {k: v for k, v in flat.items() if k not in _NOT_A_VARIANT}


def varying_settings(runs: Sequence[Run]) -> dict[str, list[str]]:
    """``label -> ["dropin_length=2500", ...]``: the settings in which the runs differ.

    Only runs with a ``config.json`` are compared (a study's or recipe's own folder has none:
    counted, every setting would "differ"), and a setting a run's config lacks (one added to
    grownet after the run) is the default it trained with.

    >>> a, b, study = (Run(Path(n), n) for n in "abs")
    >>> a.config, b.config = {"seed": 1, "base_lr": 0.01}, {"seed": 2}  # 0.01: the default
    >>> varying_settings([a, b, study])
    {'a': ['seed=1'], 'b': ['seed=2']}
    """
    defaults = TrainConfig().to_dict()
    configured = [run for run in runs if run.config]
    flats = [_flat_config({**defaults, **run.config}) for run in configured]
    keys = sorted({k for flat in flats for k in flat})
    differ = [k for k in keys if len({repr(flat.get(k)) for flat in flats}) > 1]
    return {
        run.label: [f"{k}={flat[k]}" for k in differ if k in flat]
        for run, flat in zip(configured, flats, strict=True)
    }


def _status(run: Run) -> str:
    """How the run ended, or how far it is; a study directory trains nothing itself (its
    trials do, each in its own run): what it found, from its summary."""
    if run.result:
        return str(run.result.get("status", "?"))
    if run.study_summary:
        return study_status(run.study_summary)
    if run.train or run.test:
        return "in progress"
    return "study, not finished (no study_summary.json)" if run.study else "no metrics yet"


def study_status(summary: dict[str, Any]) -> str:
    """A finished study in a line, from its ``study_summary.json``.

    Example:
        >>> study_status({"trials": {"complete": 4, "pruned": 1}, "pareto": False,
        ...               "best": [{"number": 3, "accuracy": 0.95}]})
        'study: 4 complete, 1 pruned; best trial 3, accuracy 95.00 %'
    """
    counts = summary.get("trials") if isinstance(summary.get("trials"), dict) else {}
    said = "study: " + (", ".join(f"{n} {state}" for state, n in counts.items()) or "no trials")
    best = [row for row in summary.get("best") or [] if isinstance(row, dict)]
    if not best:
        return f"{said}; no finished trial"
    if summary.get("pareto"):
        return f"{said}; Pareto set of {len(best)} trials"
    first = best[0]
    return f"{said}; best trial {first.get('number')}, accuracy {percent(first.get('accuracy'))}"


def _parameters(run: Run) -> str:
    """Parameters of the run's current network (graph.json), if it has a drawable one."""
    data = dict(run.graphs).get("graph.json")
    try:
        return f"{NetGraph.from_dict(data).num_params():,}" if data else ""
    except (GraphError, KeyError, TypeError):  # the network section says what is wrong
        return "?"


def runs_table(runs: Sequence[Run]) -> str:
    """One row per run: what it trained, how far it got, how it ended, and on which split
    its accuracies were measured."""
    varying = varying_settings(runs) if len(runs) > 1 else {}
    rows = []
    for run in runs:
        records = run.train + run.test
        accuracies = [a for r in run.test if (a := number(r.get("accuracy"))) is not None]
        times = [t for r in records if (t := number(r.get("wall_time_s"))) is not None]
        so_far = {  # a run still going has no result.json: its numbers so far
            "iterations": max((r["iteration"] for r in records), default=None),
            "final_test_accuracy": accuracies[-1] if accuracies else None,
            "best_test_accuracy": max(accuracies, default=None),
            "wall_time_s": max(times, default=None),
        }
        got = so_far | run.result
        # result.json and metrics.jsonl name every accuracy "test", whichever split it was on.
        split = answer_split(run)
        budget = run.config.get("max_iter")
        status = _status(run)
        rows.append(
            [
                run.label,
                run.config.get("model", ""),
                _parameters(run),
                run.config.get("dataset", ""),
                (status, "good" if status == "converged" else ""),
                count(got["iterations"]) + (f" / {count(budget)}" if budget else ""),
                percent(got["final_test_accuracy"]),
                percent(got["best_test_accuracy"]),
                word(split),
                seconds(got["wall_time_s"]),
                ", ".join(varying.get(run.label, [])),
            ]
        )
    head = ["run", "model", "parameters", "dataset", "status", "iterations", "final acc.",
            "best acc.", "acc. on", "wall time", "differs in"]  # fmt: skip
    return table(head, rows)


def _verdict_class(verdict: str) -> str:
    return {"reproduced": "good", "not reproduced": "bad"}.get(verdict, "")


def paper_table(summary: dict[str, Any]) -> str:
    """The recipe's cases: the paper's value beside the measured one, the difference and the
    verdict (:mod:`grownet.reproduce.verdict`); a quick run says so beside every number."""
    cases = [c for c in summary.get("cases", []) if isinstance(c, dict)]
    head = ["case", "network", "DropIn length", "iterations", "paper", "measured", "difference",
            "verdict", "status", "wall time"]  # fmt: skip
    rows = []
    for c in cases:
        verdict = str(c.get("verdict", "-"))
        iterations = count(c.get("iterations")) + (
            f" / {count(c['max_iter'])}" if c.get("max_iter") else "")  # fmt: skip
        rows.append([
            c.get("case", "?"), c.get("network", ""), count(c.get("dropin_length")), iterations,
            c.get("paper", "-"), c.get("measured", "n/a"), c.get("difference", "-"),
            (verdict, _verdict_class(verdict)), c.get("status", "?"),
            seconds(c.get("wall_time_s")),
        ])  # fmt: skip
    note = summary.get("scale_note")
    caption = f"<p class='bad'>{html.escape(note)}</p>" if note else ""
    return caption + table(head, rows)


def _command(env: dict[str, Any]) -> str:
    command = env.get("command")
    if isinstance(command, list):
        return shlex.join(map(str, command))
    return str(command or "")


PROVENANCE_ROWS = (
    ("directory", lambda r: str(r.path)),
    ("git commit", lambda r: r.env.get("git_commit")),
    ("grownet", lambda r: r.env.get("grownet")),
    ("python", lambda r: r.env.get("python")),
    ("torch", lambda r: r.env.get("torch")),
    ("torchvision", lambda r: r.env.get("torchvision")),
    ("device", lambda r: r.env.get("device")),
    ("device name", lambda r: r.env.get("device_name")),
    ("CUDA / cuDNN", lambda r: r.env.get("cuda") and f"{r.env['cuda']} / {r.env.get('cudnn')}"),
    ("CPUs / threads", lambda r: r.env and f"{r.env.get('cpu_count')} / {r.env.get('threads')}"),
    ("platform", lambda r: r.env.get("platform")),
    ("seed", lambda r: r.config.get("seed")),
    ("data", lambda r: r.dataset.get("dataset")),
    ("data files", lambda r: r.dataset.get("directory") or r.dataset.get("reader")),
    ("data split seed", lambda r: r.dataset.get("split_seed")),
    ("command", lambda r: _command(r.env)),
    ("wall time", lambda r: r.result and seconds(r.result.get("wall_time_s"))),
    ("ended", lambda r: r.result and (r.result.get("reason") or r.result.get("status"))),
)


def provenance_table(runs: Sequence[Run]) -> str:
    """Where and with what each run's numbers were measured: one column per run."""
    rows = []
    for name, get in PROVENANCE_ROWS:
        values = [get(run) for run in runs]
        if any(v not in (None, "", {}) for v in values):
            rows.append([name, *("" if v in (None, {}) else v for v in values)])
    return table(["", *(run.label for run in runs)], rows, cls="provenance")


def bench_table(file: str, bench: dict[str, Any]) -> str:
    """A benchmark's settings and provenance, its numbers when it has no rows to plot, and its
    rows' savings beside the theories when it has (:func:`bench_rows_table`)."""
    prov = bench.get("provenance") or {}
    items = {
        "model": bench.get("model"),
        "device": prov.get("device") and f"{prov['device']} ({prov.get('device_name')})",
        "threads": prov.get("threads"),
        "torch": prov.get("torch"),
        "git commit": prov.get("git_commit"),
        **(bench.get("config") or {}),
    }
    if not bench.get("rows"):
        items |= {k: v for k, v in bench.items() if isinstance(v, int | float | str)}
    rows = [[k, v] for k, v in items.items() if v is not None]
    rows += [["finding", line] for line in bench.get("findings") or ()]
    return table([file, ""], rows, cls="provenance") + bench_rows_table(bench) + _bench_paper(bench)


def _bench_paper(bench: dict[str, Any]) -> str:
    """The papers' measured savings beside the run's, with verdicts, worked out afresh from the
    rows (:mod:`grownet.reproduce.timing`), so a file written before a correction shows it too."""
    try:
        entries = compare_to_paper(bench)
    except (KeyError, TypeError, AttributeError):  # a file without rows: nothing to compare
        return ""
    if not entries:
        return ""
    head = ["variant", "paper saving", "measured", "difference", "verdict", "source"]
    body = [[e["variant"], e["paper"], e["measured"], e["difference"],
             (e["verdict"], _verdict_class(e["verdict"])), e["source"]]
            for e in entries]  # fmt: skip
    return table(head, body, cls="paper")


# The theory columns of a benchmark row: the key, and the column's head.
BENCH_THEORIES = (
    ("theory_saving", "theory (MACs)"),
    ("paper_theory_saving", "paper's formula"),
    ("paper_theory_mac_saving", "paper's formula by MACs"),
)


def bench_rows_table(bench: dict[str, Any]) -> str:
    """A timing benchmark's rows: time per step, measured saving, and each theory beside it.

    "paper's formula" is the paper's count as it states it (equal units); a file written before
    the MAC-weighted column existed shows that column only if some row has it.

    Example:
        >>> doc = {"rows": [{"variant": "p=0.5 skip", "total_ms": 30, "saving": 0.3,
        ...                  "theory_saving": 0.4, "paper_theory_saving": 0.346}]}
        >>> html_text = bench_rows_table(doc)
        >>> "34.60 %" in html_text, "by MACs" in html_text
        (True, False)
    """
    rows = bench.get("rows") or []
    if not rows:
        return ""
    theories = [(k, h) for k, h in BENCH_THEORIES if any(k in r for r in rows)]
    head = ["variant", "total ms", "saving", *(h for _, h in theories)]
    body = [
        [r.get("variant", ""), f"{number(r.get('total_ms')) or 0:.1f}", percent(r.get("saving")),
         *(percent(r.get(k)) for k, _ in theories)]
        for r in rows
    ]  # fmt: skip
    return table(head, body, cls="bench")


def notes_list(runs: Sequence[Run]) -> str:
    """What the report skipped (corrupt lines, files off their schema), so no gap is silent."""
    items = [f"{run.label}: {note}" for run in runs for note in run.notes]
    if not items:
        return ""
    return "<ul class='notes'>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def source_list(sources: Sequence[Path]) -> str:
    return ", ".join(f"<code>{html.escape(str(p))}</code>" for p in sources)
