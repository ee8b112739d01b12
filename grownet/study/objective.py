"""One trial of a study: an ordinary run directory, its objectives and its user attributes.

A trial trains (kind train) or searches (kind search) in ``runs/<study>/trials/<number>/``
and records, as user attributes, everything a figure needs: ``run_dir`` (relative to the study
directory), ``depth``, ``params``, ``flops``, ``widths``, ``accuracy``, ``status``,
``train_time_s``, ``train_flops`` (iterations x FLOPs per iteration, the compute a
comparison adds up: :mod:`grownet.train.compute`) and ``ms_per_iter``; ``accuracy`` is on
the validation split (``split``), which the objective and the pruner read, and
``test_accuracy`` the test split's, read once after the trial and fed to nothing; so a report
can be redrawn from the storage alone or from the directories alone.

A trial that retries a failed one (its worker died) or continues an interrupted one runs in
that trial's directory, and resumes its checkpoint.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grownet.errors import RunDirError
from grownet.graph import NetGraph
from grownet.search.grow import weighted_depth
from grownet.study.spec import StudySpec
from grownet.study.storage import TrialLocks
from grownet.train.callbacks import Callback, Stop
from grownet.train.rundir import RunDir, run_threads
from grownet.train.trainer import Trainer
from grownet.train.verdict import INTERRUPTED

PRUNED = "pruned"


# A trial's user attributes when Ctrl-C stopped it before it measured anything.
_INTERRUPTED = {"depth": None, "params": None, "flops": None, "widths": {}, "accuracy": None,
                "status": INTERRUPTED, "train_time_s": 0.0, "train_flops": 0,
                "ms_per_iter": None}  # fmt: skip


class TrialInterrupted(Exception):
    """Ctrl-C stopped a trial between steps; it is enqueued again to continue its directory."""


class StartInterrupted(Exception):
    """Ctrl-C stopped the training a trial starts from (a grown case's source): the trial
    is interrupted and continues on a rerun."""


class Surplus(Exception):
    """Other workers' trials already make up ``n_trials``: this one is not needed."""


class Superseded(Exception):
    """Another worker took this trial for dead (a heartbeat starved on a loaded machine) and
    failed it, or its retry holds the run directory: this worker's result cannot be told."""


class Pruning(Callback):
    """Reports every evaluation to Optuna and stops a run the pruner gives up on.

    A network still mixing in DropIn layers is not pruned before its last DropIn has mixed in
    (``mixed_by``): mid-growth accuracy dips are the schedule, not a bad trial. The values are
    reported all the same, so other trials are compared step for step.
    """

    def __init__(self, trial: Any, *, mixed_by: int) -> None:
        self.trial = trial
        self.mixed_by = mixed_by

    def on_evaluate(self, trainer: Any, iteration: int, accuracy: float) -> Stop | None:
        self.trial.report(accuracy, iteration)
        if iteration >= self.mixed_by and self.trial.should_prune():
            return Stop(PRUNED, f"pruned by Optuna at iteration {iteration}")
        return None


def mixed_by(graph: NetGraph) -> int:
    """The iteration by which every gradual DropIn of ``graph`` has mixed its new layer in.

    >>> from grownet.zoo import build
    >>> mixed_by(build("lenet2n", n=2, dropin_length=300)), mixed_by(build("convnet"))
    (300, 0)
    """
    ends = [
        p["start"] + p["length"]
        for n in graph.nodes_of("dropin")
        if (p := graph.spec(n).params)["mode"] == "gradual"
    ]
    return max(ends, default=0)


def network_attrs(graph: NetGraph) -> dict[str, Any]:
    shapes = graph.shapes()
    return {
        "depth": weighted_depth(graph),
        "params": graph.num_params(),
        "flops": 2 * graph.macs(),
        "widths": {n: shapes[n][0] for n in graph.nodes_of("conv", "linear")},
    }


def ms_per_iter(run: Path, batch_size: int) -> float | None:
    """The median step time of a run, from its train records' images per second."""
    records = [r for r in RunDir(run).read_metrics() if r.get("kind") == "train"]
    rates = [r["images_per_s"] for r in records if isinstance(r.get("images_per_s"), int | float)]
    rates = [r for r in rates if r > 0]
    return 1000.0 * batch_size / statistics.median(rates) if rates else None


def trial_dir(study: Any, trial: Any, fresh: str) -> str:
    """The run directory (relative to the study's) this trial trains in: ``fresh`` unless it
    continues or retries another trial."""
    if "resume" in trial.user_attrs:
        return trial.user_attrs["resume"]
    # Optuna's retry callback marks the retry with the failed trial's number.
    failed = study._storage.get_trial(trial._trial_id).system_attrs.get("failed_trial")
    if failed is not None:
        for t in study.get_trials(deepcopy=False):
            if t.number == failed and "run_dir" in t.user_attrs:
                return t.user_attrs["run_dir"]
    return fresh


def check_needed(study: Any, trial: Any, n_trials: int) -> None:
    """Raise :class:`Surplus` when the trials numbered before this one (finished, running or
    waiting) already make up ``n_trials``: two workers may start the last one at once."""
    from optuna.trial import TrialState

    counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    trials = study.get_trials(deepcopy=False, states=counted)
    ahead = sum(1 for t in trials if t.number < trial.number)
    if ahead >= n_trials:
        trial.set_user_attr("surplus", True)
        raise Surplus(f"trial {trial.number}: {n_trials} trials are finished or running already")


def values_of(spec: StudySpec, attrs: dict[str, Any]) -> list[float]:
    table = {
        "accuracy": attrs["accuracy"] if attrs["accuracy"] is not None else 0.0,
        "params": attrs["params"],
        "flops": attrs["flops"],
        "ms_per_iter": attrs["ms_per_iter"] if attrs["ms_per_iter"] is not None else float("inf"),
        "train_time": attrs["train_time_s"],
    }
    return [float(table[o]) for o in spec.objectives]


def make_objective(
    spec: StudySpec,
    study_dir: Path,
    *,
    echo: Callable[[str], None],
    locks: TrialLocks,
    quiet: bool = True,
) -> Callable[[Any], list[float] | float]:
    """The function ``study.optimize`` calls once per trial, inside ``with locks``: the
    trial takes its lock (:meth:`TrialLocks.hold`) before it writes anything."""
    from optuna.trial import TrialState

    def objective(trial: Any) -> list[float] | float:
        study = trial.study
        check_needed(study, trial, spec.n_trials)
        values = {p.name: p.suggest(trial) for p in spec.space}
        run = trial_dir(study, trial, spec.run_name(values, trial.number))
        locks.hold(trial.number)
        trial.set_user_attr("run_dir", run)
        try:
            if spec.kind == "train":
                attrs = _train(spec, trial, values, study_dir, run, quiet)
            else:
                attrs = _search(spec, values, study_dir, run, quiet)
        except RunDirError as err:  # the trial it retries is still running there
            raise Superseded(f"trial {trial.number}: {err}") from None
        if study._storage.get_trial(trial._trial_id).state != TrialState.RUNNING:
            raise Superseded(f"trial {trial.number} was failed by another worker")
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        if attrs["status"] == INTERRUPTED:
            trial.set_user_attr("interrupted", True)
            study.enqueue_trial(trial.params, user_attrs={"resume": run})
            raise TrialInterrupted(f"trial {trial.number} interrupted in {study_dir / run}")
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        accuracy = "n/a" if attrs["accuracy"] is None else f"{100 * attrs['accuracy']:.2f} %"
        echo(f"trial {trial.number}: {attrs['status']}, accuracy {accuracy}, depth "
             f"{attrs['depth']}, {attrs['params']:,} params ({attrs['train_time_s']:.1f} s; "
             f"{shown}) -> {study_dir / run}")  # fmt: skip
        if attrs["status"] == PRUNED:
            import optuna

            raise optuna.TrialPruned(f"pruned in {study_dir / run}")
        result = values_of(spec, attrs)
        return result[0] if len(result) == 1 else result

    return objective


def _train(
    spec: StudySpec, trial: Any, values: dict[str, Any], study_dir: Path, run: str, quiet: bool
) -> dict[str, Any]:
    config = spec.train_config(values, name=run, runs_dir=str(study_dir))
    config = spec.validated(config)
    config.quiet = quiet
    config.threads = run_threads(config.threads, study_dir / run)
    try:
        start = spec.initial_network(values, config, study_dir=study_dir)
    except StartInterrupted:
        return dict(_INTERRUPTED)
    graph, state = start if start is not None else (None, None)
    trainer = Trainer(config, graph=graph, init_state=state)
    if spec.pruner != "none":
        trainer.callbacks.append(Pruning(trial, mixed_by=mixed_by(trainer.graph)))
    result = trainer.run(resume=True)
    test = None
    if result.status not in (INTERRUPTED, PRUNED) and result.final_test_accuracy is not None:
        # read once, after the trial's last evaluation; no objective or pruning sees it
        test = float(trainer.correctness("test").float().mean())
    return {
        **network_attrs(trainer.graph),
        "accuracy": result.final_test_accuracy,
        "split": trainer.eval_split,
        "test_accuracy": test,
        "status": result.status,
        "iterations": result.iterations,
        "train_time_s": result.wall_time_s,
        "train_flops": result.train_flops,
        "ms_per_iter": ms_per_iter(study_dir / run, config.batch_size),
    }


def _search(
    spec: StudySpec, values: dict[str, Any], study_dir: Path, run: str, quiet: bool
) -> dict[str, Any]:
    from grownet.search.runner import Search
    from grownet.search.runs import SearchInterrupted

    path = study_dir / run
    search_spec = spec.search_spec(values, name=path.name, runs_dir=str(path.parent))
    try:
        summary = Search(search_spec, echo=lambda line: None, quiet=quiet).run()
    except SearchInterrupted:
        return dict(_INTERRUPTED)
    graph = NetGraph.from_json(path / "graph.json")
    recommended = Path(summary["recommended"]["run"])
    batch = search_spec.train_config(name="check").batch_size
    final, rec = summary.get("final"), summary["recommended"]
    # the answer's test accuracy: the final model's when the search trained one
    test = final["chosen"]["test_accuracy"] if final else rec.get("test_accuracy")
    return {
        **network_attrs(graph),
        "accuracy": summary["recommended"]["accuracy"],
        "split": summary["recommended"].get("split", "test"),
        "test_accuracy": test,
        "status": "search finished",
        "train_time_s": summary["train_time_s"],
        "train_flops": summary["compute"]["train_flops"],
        "ms_per_iter": ms_per_iter(recommended, batch),
    }
