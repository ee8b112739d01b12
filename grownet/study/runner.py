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
from grownet.study.storage import (
    TrialLocks,
    describe_storage,
    fail_dead_trials,
    is_url,
    open_storage,
)
from grownet.study.summary import format_summary, summarize
from grownet.train.resume import differing_keys
from grownet.train.rundir import WORKER_THREADS, RunDir, capped_workers, run_path

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
        self.dir = run_path(spec.runs_dir, spec.name)
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
        locks = TrialLocks(self.dir, study.study_name)
        objective = make_objective(self.spec, self.dir, echo=self.echo, locks=locks,
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
                with locks:
                    study.optimize(objective, n_trials=1, catch=(), gc_after_trial=False)
            except (Surplus, Superseded, UpdateFinishedTrialError) as err:
                if not isinstance(err, Surplus):
                    self.echo(f"{err}; going on")
                continue
            except TrialInterrupted as err:
                self.echo(f"{err}; rerun the same command to continue it")
                raise KeyboardInterrupt from None

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

    def worker_count(self) -> int:
        """How many worker processes to start: ``--workers``, but no more than this machine's
        CPU cores (more only take turns on them, and a huge number exhausts the processes a
        user may fork) nor than the trials left; a capped count is said in one line. The
        storage stays the one ``--workers`` chose: a rerun must find the same study."""
        finished, _, _ = self.counts(self.load(worker=0))
        left = max(0, self.spec.n_trials - finished)
        count, said = capped_workers(self.workers, left=left,
                                     what=f"{left} of {self.spec.n_trials} trials")  # fmt: skip
        if said:
            self.echo(said)
        return count

    def _spawn(self) -> None:
        """:meth:`worker_count` processes of this command, each with its share of the CPU
        threads; none outlives this one (:func:`_stop`, :func:`_die_with_parent`)."""
        count = self.worker_count()
        argv = [sys.executable, "-m", "grownet", *self.worker_argv()]
        threads = max(1, (os.cpu_count() or 1) // max(1, count))
        env = {**os.environ, WORKER_THREADS: str(threads)}
        procs: list[subprocess.Popen] = []
        arm = _die_with_parent()
        try:
            for i in range(count):
                # Own sessions: a terminal's Ctrl-C reaches this process alone, which passes
                # exactly one SIGINT on (two would stop a trial at once, not after its step).
                command = [*argv, "--worker", str(i)]
                try:
                    procs.append(
                        subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=arm)
                    )
                except OSError as err:  # e.g. the user's process limit
                    raise StudySpecError(
                        f"--workers {self.workers}: worker {i} could not be started "
                        f"({err.strerror or err}); the ones started were stopped: pass a "
                        "smaller --workers"
                    ) from None
            codes = [p.wait() for p in procs]
        except BaseException:  # Ctrl-C, or a worker that could not be started
            _stop(procs)
            raise
        if any(code == 130 for code in codes):
            raise KeyboardInterrupt
        dead = {i: code for i, code in enumerate(codes) if code != 0}
        if not dead:
            return
        if self.counts(self.load(worker=0))[0] < self.spec.n_trials:
            raise StudySpecError(f"{len(dead)} of {count} workers failed (exit codes {codes}); "
                                 "see their output above")  # fmt: skip
        # The others failed and retried the trials the dead ones held (fail_dead_trials)
        # and finished the study: its result stands, and the command succeeds.
        for i, code in dead.items():
            self.echo(f"worker {i} died ({_how(code)}); the other workers retried any trial it "
                      "held and finished the study")  # fmt: skip

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


def _how(code: int) -> str:
    """How a process ended, from its ``Popen.returncode``.

    >>> _how(-9), _how(1), _how(-40)
    ('killed by SIGKILL', 'exit code 1', 'killed by signal 40')
    """
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:  # a real-time signal has no name of its own
        return f"killed by signal {-code}"


def _stop(procs: list[subprocess.Popen]) -> None:
    """Stop the running workers and wait for them: SIGINT, so each stops after its step and
    its trial continues on a rerun; a Ctrl-C while waiting passes a second SIGINT on, which
    stops them at once."""
    while True:
        try:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            for p in procs:
                p.wait()
            return
        except KeyboardInterrupt:
            continue


def _die_with_parent() -> Callable[[], None] | None:
    """For ``Popen(preexec_fn=...)`` on Linux: the kernel sends the worker SIGINT when this
    process dies, however it dies (a SIGKILL runs no Python), so no worker outlives the
    command; ``None`` elsewhere. (Strictly, when the thread that started it ends: ``_spawn``
    waits for its workers in that thread.)"""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    # Looked up here: between fork and exec the child only calls it.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:
        prctl(1, int(signal.SIGINT))  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the call
            os.kill(os.getpid(), signal.SIGINT)

    return arm
