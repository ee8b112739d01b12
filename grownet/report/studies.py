"""Optuna studies in a run directory's ``study.db``, drawn with ``optuna.visualization``.

Every study in the storage is drawn: optimisation history and parameter importances for one
objective; for several, the Pareto front (its trials outlined, every colour dark enough to see
on white), each objective's history and the importances of all; parallel coordinates of the
sampled parameters and every objective (drawn here: optuna's draws one objective only); the
intermediate values (accuracy at each evaluation, on the split the trials evaluated) when
trials reported any. A grownet architecture study's trials also say what network each trained
(user attributes, :mod:`grownet.report.trials`): accuracy vs depth and vs parameters over all
trials, and a table of the Pareto set or best trial. A study with one complete trial gets its
history and table; parallel coordinates and importances need two, and importances two
parameters (a recipe's grid over its cases has one). Optuna is imported only when a run has a
study, so other reports do not pay for it.

Example:
    >>> import tempfile, optuna
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> db = Path(tempfile.mkdtemp()) / "study.db"
    >>> study = optuna.create_study(study_name="demo", storage=f"sqlite:///{db}")
    >>> def loss(t):
    ...     return (t.suggest_float("x", -2, 2) - 1) ** 2 + t.suggest_float("y", 0, 1)
    >>> study.optimize(loss, n_trials=4)
    >>> sorted(study_figures(db, label="run"))
    ['demo-history', 'demo-importance', 'demo-parallel']
"""

from __future__ import annotations

import contextlib
import html
import math
import shutil
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from grownet.report import trials
from grownet.report.figures import integer_step, visible_scale
from grownet.report.splits import named

_SQLITE = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
MIN_TRIALS = 2  # fewer trials: a table, no figures (importances need two finished ones)
NOT_SAMPLED = "not sampled"  # a parameter a trial did not draw (a stage its depth lacks)
Content = list[str | tuple[str, go.Figure]]


def _titled(fig: go.Figure, title: str) -> go.Figure:
    fig.update_layout(template="plotly_white", title={"text": title, "x": 0.01}, height=460)
    return fig


def _single(study: Any, where: str, objective: str, rank: bool) -> dict[str, Callable]:
    from optuna import visualization as vis

    plots: dict[str, Callable] = {
        "history": lambda: _titled(
            vis.plot_optimization_history(study, target_name=objective),
            f"{where}: optimisation history",
        )
    }
    if rank:
        plots["importance"] = lambda: _titled(
            vis.plot_param_importances(study, target_name=objective),
            f"{where}: parameter importances",
        )
    return plots


def _multi(study: Any, where: str, objectives: list[str], rank: bool) -> dict[str, Callable]:
    from optuna import visualization as vis

    plots: dict[str, Callable] = {}
    if len(objectives) in (2, 3):  # optuna draws a front in two or three dimensions only
        plots["pareto"] = lambda: _titled(
            _outlined(vis.plot_pareto_front(study, target_names=objectives)),
            f"{where}: Pareto front",
        )
    for i, name in enumerate(objectives):
        plots[f"history-{i}"] = lambda i=i, name=name: _titled(
            vis.plot_optimization_history(study, target=lambda t: t.values[i], target_name=name),
            f"{where}: optimisation history of {name}",
        )
    if rank:
        plots["importance"] = lambda: _titled(
            _fanova(study, objectives), f"{where}: parameter importances"
        )
    return plots


def _outlined(pareto: go.Figure) -> go.Figure:
    """Optuna's Pareto front with colours seen on white and its front drawn apart: optuna
    colours trials by number on Blues and Reds, whose pale ends drew the first trials (a Pareto
    trial among them) almost white."""
    for trace in pareto.data:
        if "Best Trial" in (trace.hovertemplate or ""):
            trace.name = "Pareto-optimal"
            trace.marker.colorscale = visible_scale("Reds", 0.4)
            trace.marker.line = {"color": "black", "width": 1.5}
            trace.marker.symbol, trace.marker.size = "diamond", 11
        elif trace.marker.colorscale is not None:  # dominated; infeasible ones are plain grey
            trace.name = "dominated"
            trace.marker.colorscale = visible_scale("Blues", 0.4)
    return pareto


def _dimension(label: str, values: list[Any], distribution: Any = None) -> dict[str, Any]:
    """One axis of the parallel coordinates. A categorical parameter, or one that some trials
    did not sample, has a tick per value (labelled with it); a log-scaled one is drawn in
    decades; an integer one ticks on whole numbers only."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution) or None in values:
        drawn = sorted({v for v in values if v is not None})
        order = getattr(distribution, "choices", None) or drawn
        ticks = [*order, *([NOT_SAMPLED] if None in values else [])]
        index = [ticks.index(NOT_SAMPLED if v is None else v) for v in values]
        labels = [str(t) for t in ticks]
        return {"label": label, "values": index, "tickvals": list(range(len(ticks))),
                "ticktext": labels}  # fmt: skip
    if getattr(distribution, "log", False):
        logs = [math.log10(v) for v in values]
        decades = list(range(math.floor(min(logs)), math.ceil(max(logs)) + 1))
        return {"label": label, "values": logs, "range": [decades[0], decades[-1]],
                "tickvals": decades, "ticktext": [f"{10.0**d:g}" for d in decades]}  # fmt: skip
    if isinstance(distribution, IntDistribution):
        step = integer_step(max(values) - min(values))
        ticks = range(min(values) // step * step, max(values) + 1, step)
        return {"label": label, "values": values, "tickvals": list(ticks)}
    return {"label": label, "values": values}


def parallel_coordinates(done: list[Any], objectives: list[str]) -> go.Figure:
    """One line per complete trial through its sampled parameters and every objective value,
    coloured by the first objective (the README promises this plot for every study)."""
    names = sorted({p for t in done for p in t.params})
    dimensions = [
        _dimension(name, [t.params.get(name) for t in done],
                   next(t.distributions[name] for t in done if name in t.params))
        for name in names
    ]  # fmt: skip
    dimensions += [_dimension(o, [t.values[i] for t in done]) for i, o in enumerate(objectives)]
    line = {"color": [t.values[0] for t in done], "colorscale": visible_scale("Viridis", 0, 0.8),
            "showscale": True, "colorbar": {"title": {"text": objectives[0]}}}  # fmt: skip
    fig = go.Figure(go.Parcoords(dimensions=dimensions, line=line))
    # Room on the right for the colour bar beside the last axis' tick labels.
    return fig.update_layout(margin={"l": 70, "r": 120, "t": 100, "b": 40})


def _fanova(study: Any, objectives: list[str]) -> go.Figure:
    from optuna import visualization as vis
    from optuna.importance import FanovaImportanceEvaluator

    # fANOVA: a variance decomposition, right whichever way each objective points (optuna's
    # default PED-ANOVA ranks by the low end of every objective, wrong for a maximised one).
    importance = vis.plot_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    for trace, name in zip(importance.data, objectives, strict=False):
        trace.name = name  # optuna says "Objective Value 0"
    return importance


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[Any]:
    """A storage over a private copy of ``path``: an SQLite file, or a journal file (a study
    run by several workers, ``study.journal``).

    A report only reads: opened in place, Optuna would create its schema in an empty or
    foreign file and may migrate an old one. So a file that is not SQLite is refused, and the
    rest is read from a copy (with its write-ahead log) that is thrown away.
    """
    if path.suffix == ".journal":
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        with tempfile.TemporaryDirectory(prefix="grownet-study-") as tmp:
            copy = Path(tmp) / path.name
            shutil.copyfile(path, copy)  # a worker may be appending: read a snapshot
            yield JournalStorage(JournalFileBackend(str(copy)))
        return
    with path.open("rb") as f:
        header = f.read(len(_SQLITE))
    if header != _SQLITE:
        what = "an empty file" if not header else "not an SQLite database"
        raise ValueError(f"{path} is {what}, not an Optuna storage; left as it is")
    with tempfile.TemporaryDirectory(prefix="grownet-study-") as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        for suffix in ("-wal", "-shm"):
            if (side := path.with_name(path.name + suffix)).exists():
                shutil.copyfile(side, copy.with_name(copy.name + suffix))
        yield f"sqlite:///{copy}"


def study_content(path: Path, *, label: str) -> Content:
    """Headings, tables and figures ``(<study>-<kind>, figure)`` of every study in the SQLite
    storage ``path``, in reading order; the file is never written (see :func:`_read_only`)."""
    with _read_only(Path(path)) as storage:
        return _content(storage, label)


def study_figures(path: Path, *, label: str) -> dict[str, go.Figure]:
    """The figures of :func:`study_content`, keyed ``<study>-<kind>``."""
    return {
        item[0]: item[1] for item in study_content(path, label=label) if isinstance(item, tuple)
    }


_STATES = {"complete": "complete", "pruned": "pruned", "interrupted": "interrupted (continued)",
           "fail": "failed", "running": "running", "waiting": "waiting"}  # fmt: skip


def _state(trial: Any) -> str:
    # Ctrl-C fails a trial in Optuna's terms, but its run goes on in the trial queued after it.
    if trial.state.name == "FAIL" and trial.user_attrs.get("interrupted"):
        return "interrupted"
    return trial.state.name.lower()


def _counts(study: Any) -> str:
    """``"6 complete, 2 pruned, 1 failed"``: every state the study has trials in."""
    states = Counter(_state(t) for t in study.get_trials(deepcopy=False))
    return ", ".join(f"{states[s]} {word}" for s, word in _STATES.items() if states[s])


def _draw(name: str, kind: str, plot: Callable[[], go.Figure], out: Content) -> None:
    """One optuna plot into ``out``; one that fails (degenerate trials) is named, not fatal."""
    try:
        out.append((f"{name}-{kind}", plot()))
    except Exception as err:  # optuna's own checks: a report draws what it can
        text = f"study {name}: {kind} not drawn: {err}"
        warnings.warn(text, stacklevel=2)
        out.append(f"<p class='bad'>{html.escape(text)}</p>")


def _content(storage: Any, label: str) -> Content:
    import optuna
    from optuna.trial import TrialState

    out: Content = []
    for name in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        everything = study.get_trials(deepcopy=False)
        where = f"{label}: study {name}"
        out.append(f"<h3>{html.escape(where)} ({html.escape(_counts(study) or 'no trials')})</h3>")
        points = trials.trial_points(study)
        if not done and not points:
            out.append("<p>No finished trial yet.</p>")
            continue
        count = len(study.directions)
        marked = trials.marked_trials(study)
        out.append(trials.marked_table(points, marked, single=count == 1))
        if len(everything) < MIN_TRIALS:
            # One trial (a recipe's case, a study just begun): a figure of one point says no
            # more than its table row, and its curves are drawn with the runs.
            continue
        objectives = study.metric_names or (
            ["objective"] if count == 1 else [f"objective {i}" for i in range(count)]
        )
        enough = len(done) >= MIN_TRIALS and any(t.params for t in done)
        # one parameter (a recipe's grid over its cases) holds all the importance there is
        rank = enough and len({p for t in done for p in t.params}) >= 2
        plots: dict[str, Callable] = {}
        if done:
            plots = (
                _single(study, where, objectives[0], rank)
                if count == 1
                else _multi(study, where, objectives, rank)
            )
        if enough:
            plots["parallel"] = lambda done=done, where=where, objectives=objectives: _titled(
                parallel_coordinates(done, objectives), f"{where}: parallel coordinates"
            )
        if any(t.intermediate_values for t in everything):
            reported = named((p.split for p in points), "accuracy")
            plots["intermediate"] = lambda study=study, where=where, reported=reported: _titled(
                optuna.visualization.plot_intermediate_values(study),
                f"{where}: intermediate values ({reported} at each evaluation)",
            )
        figs = trials.accuracy_figures(points, marked, where=where, single=count == 1)
        out += [(f"{name}-{kind}", fig) for kind, fig in figs.items()]
        for kind, plot in plots.items():
            _draw(name, kind, plot, out)
    return [item for item in out if item]
