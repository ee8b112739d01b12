"""``grownet study``: run an Optuna study with one or many workers, then report it.

Layout of ``runs/<study>/``::

    study.json        the spec as run (a rerun with another spec is refused)
    study.db          the SQLite storage (one worker), or study.journal (several workers)
    trials/<number>/  every trial's run directory (a training run, or a growth search)
    study_summary.json, summary.txt, report.html

Each worker loops: fail (and enqueue again) the trials of dead workers; stop once ``n_trials``
trials are finished (COMPLETE or PRUNED); wait while the others' running trials would make up
the rest; else run one more trial. Rerunning the same command continues the study: finished
trials stay, an interrupted one continues its own run directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grownet.devices import available_device
from grownet.files import atomic_write_text, check_output_dir
from grownet.study.compare import compare as place_searches
from grownet.study.compare import format_comparison, read_search
from grownet.study.objective import (
    Superseded,
    Surplus,
    TrialInterrupted,
    make_objective,
)
from grownet.study.spec import StudySpec, StudySpecError
from grownet.study.storage import describe_storage, fail_dead_trials, is_url, open_storage
from grownet.study.summary import format_summary, summarize
from grownet.train.resume import differing_keys
from grownet.train.rundir import WORKER_THREADS, RunDir

Echo = Callable[[str], None]


def make_sampler(spec: StudySpec, worker: int) -> Any:
    """The spec's sampler, seeded per worker (equal seeds would sample equal trials); a grid's
    seed is the same in every worker: Optuna gives trial k the grid point k of its seeded
    order, and orders that differ between workers would give two trials one point."""
    import optuna

    seed = spec.seed + worker
    if spec.sampler == "grid":
        space: dict[str, list[Any]] = {}
        for param in spec.space:
            space |= param.grid()
        return optuna.samplers.GridSampler(space, seed=spec.seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(spec: StudySpec) -> Any:
    import optuna

    if spec.pruner == "median":
        # Warm-up is per trial, in the pruning callback: no pruning before DropIn has mixed in.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if spec.pruner == "hyperband":
        train = spec.tables.get("train", {})
        return optuna.pruners.HyperbandPruner(
            min_resource=train.get("test_interval", 500), max_resource=train.get("max_iter", 10_000)
        )
    return optuna.pruners.NopPruner()


class StudyRunner:
    """One study over one spec, in ``runs_dir/name``, on ``storage``."""

    def __init__(
        self,
        spec: StudySpec,
        *,
        storage: str | None = None,
        workers: int = 1,
        echo: Echo = print,
        quiet: bool = True,
    ) -> None:
        if workers < 1:
            raise StudySpecError(f"--workers must be >= 1, got {workers}")
        self.spec = spec
        self.dir = Path(spec.runs_dir) / spec.name
        self.workers = workers
        self.storage = describe_storage(storage, self.dir, workers=workers)
        if storage and not is_url(storage):  # a journal file the user named: writable first
            check_output_dir(Path(storage).parent, label="--storage")
        self.echo = echo
        self.quiet = quiet

    # ------------------------------------------------------------------ setup

    def prepare(self) -> None:
        """Refuse a directory that holds another study, then save the spec and create the
        study in its storage (idempotent: a rerun continues)."""
        if device := self.spec.device or self.spec.tables.get("train", {}).get("device"):
            where = "--device" if self.spec.device else f"{self.spec.source} [train] device"
            available_device(device, label=where)
        saved = self.dir / "study.json"
        mine = json.loads(json.dumps(self.spec.to_dict()))
        if saved.exists():
            theirs = json.loads(saved.read_text())
            # a rerun may ask for more trials or time
            if changed := differing_keys(theirs, mine, ignore=("n_trials", "timeout_s")):
                raise StudySpecError(
                    f"{self.dir} holds a study with another spec (differs in "
                    f"{', '.join(changed)}); pass another --name"
                )
            self.echo(f"continuing the study in {self.dir}")
        elif RunDir(self.dir).holds_run():
            raise StudySpecError(f"{self.dir} holds a run, not a study; pass another --name")
        if is_url(self.storage) and not self.storage.startswith("sqlite"):
            self.load(worker=0)  # an unreachable database is refused before anything is written
        self.dir.mkdir(parents=True, exist_ok=True)
        self.load(worker=0)
        atomic_write_text(saved, json.dumps(mine, indent=1) + "\n")

    def load(self, *, worker: int) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)  # grownet prints each trial itself
        # Heartbeats, metric names and the retry callback are stable in use, "experimental"
        # in name; a warning each time a worker opens the study would bury the trial lines.
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(
            study_name=self.spec.study_name,
            storage=open_storage(self.storage, heartbeat_s=self.spec.heartbeat_s),
            directions=self.spec.directions,
            sampler=make_sampler(self.spec, worker),
            pruner=make_pruner(self.spec),
            load_if_exists=True,
        )
        if study.metric_names is None:
            study.set_metric_names(list(self.spec.objectives))
            study.set_user_attr("kind", self.spec.kind)
            study.set_user_attr("objectives", list(self.spec.objectives))
        return study

    # ------------------------------------------------------------------ work

    def counts(self, study: Any) -> tuple[int, int, int]:
        from optuna.trial import TrialState

        states = [t.state for t in study.get_trials(deepcopy=False)]
        finished = sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states)
        return finished, states.count(TrialState.RUNNING), states.count(TrialState.WAITING)

    def work(self, worker: int = 0) -> None:
        """This process's share of the trials (see the module docstring)."""
        from optuna.exceptions import UpdateFinishedTrialError

        study = self.load(worker=worker)
        held = contextlib.ExitStack()  # the running trial's lock, until Optuna has told it
        objective = make_objective(self.spec, self.dir, echo=self.echo, held=held,
                                   quiet=self.quiet)  # fmt: skip
        timeout = self.spec.timeout_s
        deadline = time.monotonic() + timeout if timeout else float("inf")
        poll = max(0.5, min(5.0, self.spec.heartbeat_s / 2))
        while True:
            for number in fail_dead_trials(study, self.dir):
                self.echo(f"trial {number}: its worker died; failed, and enqueued again")
            finished, running, waiting = self.counts(study)
            if finished >= self.spec.n_trials:
                return
            if time.monotonic() > deadline:
                self.echo(f"timeout: {timeout:g} s reached with {finished} trials finished")
                return
            if finished + running >= self.spec.n_trials and not waiting:
                time.sleep(poll)  # the last trials are running elsewhere
                continue
            try:
                study.optimize(objective, n_trials=1, catch=(), gc_after_trial=False)
            except (Surplus, Superseded, UpdateFinishedTrialError) as err:
                if not isinstance(err, Surplus):
                    self.echo(f"{err}; going on")
                continue
            except TrialInterrupted as err:
                self.echo(f"{err}; rerun the same command to continue it")
                raise KeyboardInterrupt from None
            finally:
                held.close()

    def run(
        self, *, worker: int | None = None, compare: list[Path] | None = None
    ) -> dict[str, Any] | None:
        """Prepare, work (here, or in ``workers`` processes), then summarise and report;
        ``compare``: growth-search run directories to place on the study's front.
        ``worker``: this process is worker number ``worker`` started by another's ``run``."""
        if worker is not None:
            self.work(worker)
            return None
        for run in compare or []:  # a mistake here must not wait for the whole study
            read_search(Path(run))
        self.prepare()
        if self.workers == 1:
            self.work(0)
        else:
            self._spawn()
        return self.finish(compare=compare)

    def worker_argv(self) -> list[str]:
        """The command line (after ``grownet``) that makes another process a worker of this
        study; ``--worker N`` is added per process."""
        spec = self.spec
        argv = ["study", spec.source, "--name", spec.name, "--runs-dir", spec.runs_dir,
                "--storage", self.storage, "--workers", str(self.workers),
                "--trials", str(spec.n_trials), "--timeout", str(spec.timeout_s)]  # fmt: skip
        for flag, value in (("--data-dir", spec.data_dir), ("--device", spec.device)):
            if value is not None:
                argv += [flag, value]
        return argv + ([] if not self.quiet else ["--quiet"])

    def _spawn(self) -> None:
        """``workers`` processes of this command, each with its share of the CPU threads."""
        argv = [sys.executable, "-m", "grownet", *self.worker_argv()]
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        env = {**os.environ, WORKER_THREADS: str(threads)}
        # Own sessions: a terminal's Ctrl-C reaches this process alone, which passes exactly
        # one SIGINT on (two would stop a trial at once instead of after its step).
        procs = [
            subprocess.Popen([*argv, "--worker", str(i)], env=env, start_new_session=True)
            for i in range(self.workers)
        ]
        try:
            codes = [p.wait() for p in procs]
        except KeyboardInterrupt:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            for p in procs:
                p.wait()
            raise
        if any(code == 130 for code in codes):
            raise KeyboardInterrupt
        if any(code != 0 for code in codes):
            raise StudySpecError(f"{sum(c != 0 for c in codes)} of {self.workers} workers failed "
                                 f"(exit codes {codes}); see their output above")  # fmt: skip

    # ------------------------------------------------------------------ results

    def finish(self, *, compare: list[Path] | None = None) -> dict[str, Any]:
        study = self.load(worker=0)
        summary = summarize(study, self.spec, self.dir, storage=self.storage)
        text = format_summary(summary)
        if compare:
            summary["comparison"] = placed = place_searches(
                study, [Path(p) for p in compare], study_dir=self.dir
            )
            atomic_write_text(self.dir / "comparison.json", json.dumps(placed, indent=1) + "\n")
            text += "\n\n" + format_comparison(placed)
        atomic_write_text(self.dir / "study_summary.json", json.dumps(summary, indent=1) + "\n")
        atomic_write_text(self.dir / "summary.txt", text + "\n")
        summary["text"] = text
        from grownet.report import try_write_report

        if report := try_write_report(self.dir):
            summary["report"] = str(report)
        return summary
