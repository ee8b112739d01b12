"""Optuna studies in a run directory's ``study.db``, drawn with ``optuna.visualization``.

Every study in the storage is drawn: optimisation history, parallel coordinates and parameter
importances for one objective; for several, the Pareto front, each objective's history and the
importances of all. A study without two finished trials has nothing to show yet. Optuna is
imported only when a run has a study, so other reports do not pay for it.

Example:
    >>> import tempfile, optuna
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> db = Path(tempfile.mkdtemp()) / "study.db"
    >>> study = optuna.create_study(study_name="demo", storage=f"sqlite:///{db}")
    >>> study.optimize(lambda t: (t.suggest_float("x", -2, 2) - 1) ** 2, n_trials=4)
    >>> sorted(study_figures(db, label="run"))
    ['demo-history', 'demo-importance', 'demo-parallel']
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

_SQLITE = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
MIN_TRIALS = 2  # importances and parallel coordinates need at least two finished trials


def _titled(fig: go.Figure, title: str) -> go.Figure:
    fig.update_layout(template="plotly_white", title={"text": title, "x": 0.01}, height=460)
    return fig


def _single(study: Any, where: str, objective: str) -> dict[str, go.Figure]:
    from optuna import visualization as vis

    return {
        "history": _titled(
            vis.plot_optimization_history(study, target_name=objective),
            f"{where}: optimisation history",
        ),
        "parallel": _titled(
            vis.plot_parallel_coordinate(study, target_name=objective),
            f"{where}: parallel coordinates",
        ),
        "importance": _titled(
            vis.plot_param_importances(study, target_name=objective),
            f"{where}: parameter importances",
        ),
    }


def _multi(study: Any, where: str, objectives: list[str]) -> dict[str, go.Figure]:
    from optuna import visualization as vis
    from optuna.importance import FanovaImportanceEvaluator

    figures = {
        "pareto": _titled(
            vis.plot_pareto_front(study, target_names=objectives), f"{where}: Pareto front"
        )
    }
    for i, name in enumerate(objectives):
        figures[f"history-{i}"] = _titled(
            vis.plot_optimization_history(
                study, target=lambda t, i=i: t.values[i], target_name=name
            ),
            f"{where}: optimisation history of {name}",
        )
    # fANOVA: a variance decomposition, right whichever way each objective points (optuna's
    # default PED-ANOVA ranks by the low end of every objective, wrong for a maximised one).
    evaluator = FanovaImportanceEvaluator(seed=0)
    importance = vis.plot_param_importances(study, evaluator=evaluator)
    for trace, name in zip(importance.data, objectives, strict=False):
        trace.name = name  # optuna says "Objective Value 0"
    figures["importance"] = _titled(importance, f"{where}: parameter importances")
    return figures


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[str]:
    """A storage URL of a private copy of the SQLite file ``path``.

    A report only reads: opened in place, Optuna would create its schema in an empty or
    foreign file and may migrate an old one. So a file that is not SQLite is refused, and the
    rest is read from a copy (with its write-ahead log) that is thrown away.
    """
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


def study_figures(path: Path, *, label: str) -> dict[str, go.Figure]:
    """Figures of every study in the SQLite storage ``path``, keyed ``<study>-<kind>``;
    the file is never written (see :func:`_read_only`)."""
    with _read_only(Path(path)) as storage:
        return _figures(storage, label)


def _figures(storage: str, label: str) -> dict[str, go.Figure]:
    import optuna

    figures: dict[str, go.Figure] = {}
    for name in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(done) < MIN_TRIALS or not any(t.params for t in done):
            continue
        where = f"{label}: study {name} ({len(done)} trials)"
        count = len(study.directions)
        objectives = study.metric_names or (
            ["objective"] if count == 1 else [f"objective {i}" for i in range(count)]
        )
        drawn = (
            _single(study, where, objectives[0]) if count == 1 else _multi(study, where, objectives)
        )
        figures |= {f"{name}-{kind}": fig for kind, fig in drawn.items()}
    return figures
