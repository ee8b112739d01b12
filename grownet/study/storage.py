"""Where a study's trials are kept, and how a dead worker's trial is found and retried.

- No ``--storage``, one worker: SQLite, ``runs/<study>/study.db``.
- No ``--storage``, several workers on this machine: a journal file,
  ``runs/<study>/study.journal`` (SQLite is not for parallel writers: Optuna's FAQ).
- ``--storage URL`` (any SQLAlchemy URL, e.g. ``postgresql://user@host/db``): one study shared
  by every machine that runs the same command; ``--storage PATH``: a journal file.

A worker killed with SIGKILL leaves its trial RUNNING. Relational storages find it by
heartbeat (Optuna's ``heartbeat_interval`` and ``grace_period``), and a trial whose worker died
before its first heartbeat by its age (:func:`never_started`); a journal file has no
heartbeat, so OS locks tell (:class:`TrialLocks`): each trial holds its own lock
(:func:`trial_lock`) while it runs, and a worker holds the study's start lock from before
Optuna creates a trial until that trial holds its lock. The dead-trial check takes the start
lock too, so no trial it sees is between the two steps: a RUNNING trial whose lock is free
then has lost its worker, whatever instant the worker died at (the kernel drops a dead
process's locks). Either way the trial is failed and
:class:`optuna.storages.RetryFailedTrialCallback` enqueues it again; the retry continues the
failed trial's run directory (from its checkpoint, bit-exact).

>>> describe_storage(None, Path("runs/s"), workers=1)
'sqlite:///runs/s/study.db'
>>> describe_storage(None, Path("runs/s"), workers=4)
'runs/s/study.journal'
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

from grownet.errors import BadValueError
from grownet.files import exclusive_lock, lock_is_free

MAX_RETRY = 2


def trial_lock(study_name: str, number: int | None = None) -> str:
    """The lock file of one trial (``number``), or the study's start lock (no ``number``),
    relative to the study directory. Several studies may share a directory and a storage (a
    recipe runs one per case selection, all numbering their trials from 0), so the name
    carries the study's as well as the trial's. The path is a function of the two alone:
    nothing about the lock needs recording in the storage.

    >>> trial_lock("s", 0) == trial_lock("s", 0) != trial_lock("s [a]", 0)
    True
    >>> trial_lock("s", 0) != trial_lock("s")
    True
    """
    digest = hashlib.sha256(study_name.encode()).hexdigest()[:12]
    return f"trials/.trial-{digest}-{'start' if number is None else number}.lock"


class TrialLocks:
    """One worker's locks over the start and the run of its trials (see the module
    docstring). Use::

        with locks:                        # the start lock: before Optuna creates the trial
            study.optimize(objective)      # the objective calls locks.hold(trial.number)
                                           # both are released once Optuna told the trial's end

    ``study.optimize`` rather than ask/tell: Optuna's heartbeat (relational storages) runs only
    inside ``optimize``. The locks are taken with every storage; only the journal's dead-trial
    check reads them (a relational storage may span machines whose study directories differ).
    """

    def __init__(self, study_dir: Path, study_name: str) -> None:
        self.dir, self.name = study_dir, study_name
        self._held = contextlib.ExitStack()
        self._starting = contextlib.ExitStack()

    def __enter__(self) -> TrialLocks:
        self._starting.enter_context(exclusive_lock(self.dir / trial_lock(self.name), wait=True))
        return self

    def hold(self, number: int) -> None:
        """Take trial ``number``'s lock, then let the next trial start: from here a check
        finds this trial's lock held for as long as this process lives."""
        self._held.enter_context(
            exclusive_lock(self.dir / trial_lock(self.name, number), wait=True)
        )
        self._starting.close()

    def __exit__(self, *exc: object) -> None:
        # Only after Optuna recorded the trial's end: a lock released earlier would let another
        # worker take the still-RUNNING trial for dead.
        self._starting.close()
        self._held.close()


def describe_storage(storage: str | None, study_dir: Path, *, workers: int) -> str:
    """The storage a study uses: a SQLAlchemy URL or a journal file path."""
    if storage:
        if storage.startswith("sqlite") and workers > 1:
            raise BadValueError(
                f"--storage {storage} with --workers {workers}: SQLite is not for parallel "
                "writers; give a journal file path (--storage runs/x.journal) or a PostgreSQL URL"
            )
        return storage
    if workers > 1:
        return str(study_dir / "study.journal")
    return f"sqlite:///{study_dir / 'study.db'}"


def is_url(storage: str) -> bool:
    return "://" in storage


def open_storage(storage: str, *, heartbeat_s: int) -> Any:
    """The Optuna storage object for ``storage`` (see :func:`describe_storage`)."""
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if not is_url(storage):
        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(storage))
    # Optuna 5 renamed the stale-trial callback argument; 3.x and 4.x know only the old name.
    params = inspect.signature(RDBStorage).parameters
    key = ("heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params
           else "failed_trial_callback")  # fmt: skip
    for attempt in range(5):
        try:
            return RDBStorage(
                storage,
                heartbeat_interval=heartbeat_s,
                grace_period=2 * heartbeat_s,
                engine_kwargs=None if storage.startswith("sqlite") else {"pool_pre_ping": True},
                **{key: retry_callback()},
            )
        except (ImportError, ModuleNotFoundError) as err:
            raise BadValueError(
                f"--storage {storage}: its database driver is not installed ({err}); for "
                'PostgreSQL: pip install "grownet[postgres]"'
            ) from None
        except Exception as err:
            # Workers starting together on a new database race to create Optuna's tables;
            # the loser sees "already exists" and finds them there a moment later.
            if attempt == 4 or ("already exists" not in str(err) and "duplicate" not in str(err)):
                raise BadValueError(
                    f"--storage {storage}: cannot open it ({type(err).__name__}: "
                    f"{str(err).splitlines()[0][:200]})"
                ) from None
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def retry_callback() -> Any:
    """Optuna's callback that enqueues a dead worker's trial again (named by version)."""
    from optuna import storages

    cls = getattr(storages, "RetryHeartbeatStaleTrialCallback", None)
    return (cls or storages.RetryFailedTrialCallback)(max_retry=MAX_RETRY)


def _finished(study: Any) -> set[int]:
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED)
    return {t.number for t in study.get_trials(deepcopy=False, states=done)}


def fail_dead_trials(study: Any, study_dir: Path) -> list[int]:
    """Fail and retry the RUNNING trials whose worker died; returns their numbers.

    Relational storages: Optuna's heartbeat check, and :func:`never_started` for a worker
    that died before its first heartbeat. Journal files: the trial locks.
    """
    import optuna
    from optuna.storages import RDBStorage
    from optuna.trial import TrialState

    if isinstance(_backend(study), RDBStorage):
        running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        for trial in never_started(study):
            _fail(study, trial)
        still = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        return sorted(running - still - _finished(study))
    failed = []
    # Under the start lock no trial is between its creation and its own lock (TrialLocks).
    with exclusive_lock(study_dir / trial_lock(study.study_name), wait=True):
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not lock_is_free(study_dir / trial_lock(study.study_name, trial.number)):
                continue  # alive
            if (number := _fail(study, trial)) is not None:
                failed.append(number)
    return failed


def never_started(study: Any) -> list[Any]:
    """RUNNING trials of a relational storage that began long ago (twice the grace period, so
    clocks apart by less than that between machines cannot mistake a live one) and never
    reached the objective (no run directory, which it records within milliseconds): their
    worker died between Optuna creating the trial and its first heartbeat, and Optuna's
    stale check skips a trial without a heartbeat, so it would stay RUNNING for good."""
    from optuna.trial import TrialState

    storage = _backend(study)
    grace = storage.grace_period or 2 * (storage.heartbeat_interval or 0)
    if not grace:
        return []
    now = datetime.now()  # what Optuna stamps a trial's start with
    return [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if "run_dir" not in t.user_attrs and t.datetime_start is not None
        and (now - t.datetime_start).total_seconds() > 2 * grace
    ]  # fmt: skip


def _backend(study: Any) -> Any:
    """The storage itself: Optuna wraps a relational one in a cache (``_backend``). Looking at
    the wrapper took every PostgreSQL study for a journal file, judged by this machine's lock
    files, which a trial running on another machine never holds here."""
    return getattr(study._storage, "_backend", study._storage)


def _fail(study: Any, trial: Any) -> int | None:
    """Fail ``trial`` and enqueue its retry; None when it ended meanwhile."""
    import optuna
    from optuna.trial import TrialState

    try:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
        return None  # it ended between the read and this
    retry_callback()(study, study._storage.get_trial(trial._trial_id))
    return trial.number
