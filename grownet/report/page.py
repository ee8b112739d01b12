"""The report page: sections of tables and figures, one HTML file that opens offline.

plotly.js (from the installed plotly package) is one ``plotly.min.js`` per runs folder,
loaded by relative path: a page inside a grownet run (a directory holding a run's lock and
files, or a study's ``study.json``) loads the copy in the folder that holds the outermost such
run, so every report under ``runs/`` shares ``runs/plotly.min.js`` (4.8 MB once, not once a
report); any other page has the file beside it. ``standalone=True`` (``grownet report
--standalone``) puts plotly.js inside the page instead: one file to mail or move. Nothing is
fetched from the network. The page is replaced atomically, so a browser reloading a run's
report while the run writes it never sees half a page.

Example:
    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> _ = (run / "metrics.jsonl").write_text(
    ...     '{"kind": "test", "iteration": 10, "loss": 0.9, "accuracy": 0.7}\\n')
    >>> out = write_report([run])
    >>> out.name, (run / "plotly.min.js").exists()
    ('report.html', True)
"""

from __future__ import annotations

import html
import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from grownet.files import atomic_write_text, check_output_dir
from grownet.graph import GraphError, NetGraph
from grownet.report import figures, growth, sweeps, tables
from grownet.report.cases import cases_over_depth
from grownet.report.comparison import comparison_content
from grownet.report.load import Evidence, ReportError, Run, load_evidence
from grownet.report.network import graph_title, network_figure
from grownet.report.protocol import search_content
from grownet.report.studies import study_content
from grownet.train.rundir import LOCK, RunDir

PLOTLY_JS = "plotly.min.js"
# plotly.js shows a "Share chart" button that uploads the figure to plotly's cloud by default:
# off, with no server to send to, and no logo link; nothing on the page points off the machine.
PLOT_CONFIG = {
    "displaylogo": False,
    "showSendToCloud": False,
    "plotlyServerURL": "",
    "responsive": True,
}
# Long lines (a summary.txt's run paths, a run label with no spaces) wrap inside the page
# rather than run past its right edge; wide tables scroll in their own box (div.wide).
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
nav a { margin-right: 1em; } p.meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } table.provenance td:first-child { font-weight: 600; }
.good { color: #1a7f37; font-weight: 600; } .bad { color: #c62828; font-weight: 600; }
.figure { margin: 0.5em 0 1.2em; } ul.notes { color: #8a5a00; } div.wide { overflow-x: auto; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f8f8f8; padding: 0.5em; }
h1, h2, h3, h4, p, li { overflow-wrap: break-word; }
"""

Figures = dict[str, go.Figure]


@dataclass
class Section:
    """A titled part of the page: HTML snippets and figures ``(id, figure)``, in order."""

    id: str
    title: str
    content: list[str | tuple[str, go.Figure]] = field(default_factory=list)

    @property
    def figures(self) -> Figures:
        return {item[0]: item[1] for item in self.content if isinstance(item, tuple)}

    def add(self, figs: Figures) -> Section:
        self.content += list(figs.items())
        return self


def _not_drawn(section: Section, text: str) -> None:
    """Say on the page, and as a warning, what could not be drawn; the rest still is."""
    warnings.warn(text, stacklevel=3)
    section.content.append(f"<p class='bad'>{html.escape(text)}</p>")


def _paper_section(i: int, source: Path, summary: dict[str, Any], runs: Sequence[Run]) -> Section:
    recipe = summary.get("recipe")
    name = Path(recipe).stem if recipe else source.name
    section = Section(f"paper-{i}", f"Paper vs measured: {name}")
    if summary.get("paper"):
        section.content.append(f"<p>{html.escape(summary['paper'])}</p>")
    if recipe:
        section.content.append(f"<p>Recipe: <code>{html.escape(str(recipe))}</code></p>")
    section.content.append(tables.paper_table(summary))
    section.add({f"paper-{i}-{key}": fig for key, fig in cases_over_depth(summary, runs).items()})
    if summary.get("notes"):
        notes = html.escape(summary["notes"].strip())
        section.content.append(f"<details><summary>notes</summary><pre>{notes}</pre></details>")
    return section


def _network_section(runs: Sequence[Run]) -> Section:
    """Each graph file of each run, drawn once: runs sharing a network share the drawing."""
    section = Section("network", "Network")
    graphs: dict[str, tuple[dict, list[str]]] = {}
    for run in runs:
        for file, data in run.graphs:
            key = json.dumps(data, sort_keys=True)
            graphs.setdefault(key, (data, []))[1].append(f"{run.label}: {file}")
    for i, (data, where) in enumerate(graphs.values()):
        names = ", ".join(where)
        try:
            graph = NetGraph.from_dict(data)
            fig = network_figure(graph, title=graph_title(names, graph))
        except (GraphError, KeyError, TypeError) as err:  # a hand-edited or foreign file
            _not_drawn(section, f"{names}: not drawn: {err}")
            continue
        section.add({f"network-{i}": fig})
    return section


def _bench_section(runs: Sequence[Run]) -> Section:
    section = Section("bench", "Benchmarks")
    for r, run in enumerate(runs):
        for i, (file, bench) in enumerate(run.benches):
            section.content.append(tables.bench_table(f"{run.label}: {file}", bench))
            section.add(figures.bench_figures(bench, key=f"{r}-{i}"))
    return section


def _study_section(runs: Sequence[Run]) -> Section:
    section = Section("studies", "Optuna studies")
    for r, run in enumerate(runs):
        if run.study is None:
            continue
        try:
            content = study_content(run.study, label=run.label)
        except Exception as err:  # a foreign or locked SQLite file: draw the rest
            _not_drawn(section, f"{run.label}: {run.study} not read: {err}")
            continue
        content += comparison_content(run.path / "comparison.json", label=run.label)
        section.content += [
            item if isinstance(item, str) else (f"study-{r}-{item[0]}", item[1]) for item in content
        ]
    return section


def build_sections(evidence: Evidence) -> list[Section]:
    """Every section the evidence has data for, in reading order."""
    runs = evidence.runs
    sections = []
    if runs:
        sections.append(Section("runs", "Runs", [tables.runs_table(runs), tables.notes_list(runs)]))
    sections += [_paper_section(i, *item, runs) for i, item in enumerate(evidence.summaries)]
    searches = [item for r in runs if r.search for item in search_content(r)]
    if searches:
        sections.append(Section("search", "Growth search: what the network needs", searches))
    curves = figures.learning_curves(runs) | growth.error_vs_time(runs)
    sections += [
        Section("curves", "Learning curves").add(curves),
        Section("signal", "Signal through the layers").add(figures.signal_maps(runs)),
        Section("growth", "Growth: accuracy vs depth")
        .add(growth.accuracy_vs_depth(runs))
        .add(growth.accuracy_vs_flops(runs)),
        Section("sweeps", "Depth and width sweeps").add(sweeps.sweep_figures(runs)),
        _bench_section(runs),
        _network_section(runs),
        _study_section(runs),
    ]
    if any(run.env or run.config or run.result for run in runs):
        sections.append(Section("provenance", "Provenance", [tables.provenance_table(runs)]))
    return [s for s in sections if any(s.content)]


def _figure_html(key: str, fig: go.Figure) -> str:
    div = pio.to_html(
        fig, full_html=False, include_plotlyjs=False, div_id=f"fig-{key}", config=PLOT_CONFIG
    )
    return f"<div class='figure'>{div}</div>"


def render(sections: Sequence[Section], evidence: Evidence, *, plotly: str = PLOTLY_JS) -> str:
    """The whole page as HTML text; ``plotly``: where it loads plotly.js from (a path relative
    to the page), or the script itself (``inline:`` + its text)."""
    labels = ", ".join(run.label for run in evidence.runs) or ", ".join(
        p.name for p in evidence.sources
    )
    nav = "".join(f"<a href='#{s.id}'>{html.escape(s.title)}</a>" for s in sections)
    body = []
    for s in sections:
        body.append(f"<section id='{s.id}'><h2>{html.escape(s.title)}</h2>")
        body += [item if isinstance(item, str) else _figure_html(*item) for item in s.content]
        body.append("</section>")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            "<html lang='en'><head><meta charset='utf-8'>",
            f"<title>{_MARK} {html.escape(labels)}</title>",
            _script(plotly),
            f"<style>{STYLE}</style></head><body>",
            f"<h1>grownet report: {html.escape(labels)}</h1>",
            f"<p class='meta'>Drawn {stamp} from {tables.source_list(evidence.sources)} "
            "(regenerate with <code>grownet report</code> at any time).</p>",
            f"<nav>{nav}</nav>",
            *body,
            "</body></html>",
        ]
    )


_MARK = "grownet report:"  # in every page's title: what may be redrawn over


_INLINE = "inline:"


def _script(plotly: str) -> str:
    if plotly.startswith(_INLINE):  # "</script" cannot occur in minified plotly.js
        return f"<script type='text/javascript'>{plotly.removeprefix(_INLINE)}</script>"
    return f"<script src='{html.escape(plotly)}' charset='utf-8'></script>"


def _is_run(directory: Path) -> bool:
    # A run or search holds its writer's lock file and its files (a .lock alone is not
    # grownet's: pytest's numbered folders have one); a study or recipe holds its study.json.
    if (directory / "study.json").is_file():
        return True
    return (directory / LOCK).is_file() and RunDir(directory).holds_run()


def plotly_home(page_dir: Path) -> Path:
    """Where a page in ``page_dir`` finds ``plotly.min.js``: the folder holding the outermost
    grownet run around it (a study's trials, a search's stages and checks are runs inside runs,
    possibly one plain folder such as ``trials/`` apart), else ``page_dir`` itself."""
    here, outer = page_dir.resolve(), None
    while True:
        if _is_run(here):
            outer = here
        elif not _is_run(here.parent):
            break
        if here.parent == here:
            break
        here = here.parent
    return outer.parent if outer is not None else page_dir.resolve()


def _write_plotlyjs(directory: Path) -> None:
    """plotly.js of the installed plotly in ``directory``; rewritten only when it differs."""
    path = directory / PLOTLY_JS
    text = get_plotlyjs()
    if path.exists() and path.stat().st_size == len(text.encode()) and path.read_text() == text:
        return
    atomic_write_text(path, text)


def default_output(paths: Sequence[Path]) -> Path:
    """``RUN_DIR/report.html`` for one path; ``report.html`` here for several."""
    return paths[0] / "report.html" if len(paths) == 1 else Path("report.html")


def write_report(
    run_dirs: str | Path | Sequence[str | Path],
    out: str | Path | None = None,
    *,
    standalone: bool = False,
) -> Path:
    """Draw the report of one or more run (or recipe) directories; returns the page's path.

    One directory: ``RUN_DIR/report.html``; several: their overlay in ``out`` (default
    ``report.html`` in the current directory). ``plotly.min.js`` is shared by the runs folder
    (see the module docstring); ``standalone`` puts plotly.js inside the page instead.
    Raises :class:`grownet.report.load.ReportError` for a path that is not a run directory.
    """
    paths = [Path(run_dirs)] if isinstance(run_dirs, str | Path) else [Path(p) for p in run_dirs]
    target = Path(out) if out is not None else default_output(paths)
    if target.is_dir():
        target = target / "report.html"
    evidence = load_evidence(paths)  # first: a mistyped run directory must not be created
    check_output(target, paths)
    if standalone:
        plotly = _INLINE + get_plotlyjs()
    else:
        home = plotly_home(target.parent)
        _write_plotlyjs(home)
        plotly = Path(os.path.relpath(home / PLOTLY_JS, target.parent.resolve())).as_posix()
    atomic_write_text(target, render(build_sections(evidence), evidence, plotly=plotly))
    return target


def check_output(target: Path, inputs: Sequence[Path]) -> None:
    """Refuse a page that would replace anything but a report, before any drawing: inside a
    run only ``report.html`` is the report's; elsewhere an existing file must be a report."""
    if target.suffix.lower() not in (".html", ".htm"):
        raise ReportError(f"-o {target}: a report is an .html file; name one, e.g. report.html")
    where = target.resolve()
    for path in inputs:
        inside = where.parent == path.resolve() or path.resolve() in where.parents
        if inside and target.name != "report.html":
            raise ReportError(
                f"-o {target} is inside the run {path}, where only report.html is the report's; "
                "write report.html there, or the page somewhere outside the run"
            )
    if target.exists() and not _is_report(target):
        raise ReportError(
            f"-o {target} exists and is not a grownet report; choose another file name"
        )
    check_output_dir(target.parent, label="the report's directory")


def _is_report(path: Path) -> bool:
    try:
        with path.open(errors="replace") as f:
            return _MARK in f.read(4096)
    except OSError:
        return False


def try_write_report(
    run_dirs: str | Path | Sequence[str | Path], out: str | Path | None = None
) -> Path | None:
    """:func:`write_report`, but a failure is a warning: the run it reports on has finished
    and its files are safe, and ``grownet report`` can draw it again later."""
    try:
        return write_report(run_dirs, out)
    except Exception as err:  # a report is a view; it must not fail the run
        warnings.warn(f"report not written for {run_dirs}: {err}", stacklevel=2)
        return None
