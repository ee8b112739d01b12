"""Optuna on a real PostgreSQL server: the mechanics grownet's studies rely on.

Several worker processes share one study through the database; a worker that dies mid-trial
(SIGKILL, a lost node) leaves a RUNNING trial whose heartbeat stops, and the next worker to
start a trial fails it and queues a retry with the same parameters.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

# Optuna 4.9 renamed RetryFailedTrialCallback / failed_trial_callback (the old names warn and
# go in 6.0); grownet supports optuna>=3.6, which has only the old ones.
if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):
    RetryCallback = optuna.storages.RetryHeartbeatStaleTrialCallback
    RETRY_KWARG = "heartbeat_stale_trial_callback"
else:  # pragma: no cover - optuna < 4.9
    RetryCallback = optuna.storages.RetryFailedTrialCallback
    RETRY_KWARG = "failed_trial_callback"

# Heartbeats and the retry callback are marked experimental (since Optuna 2.8); grownet uses
# them on purpose, so their warnings are noise here.
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

HEARTBEAT = {"heartbeat_interval": 1, "grace_period": 2}

# Shared by the worker scripts: quiet Optuna (its INFO lines would fill a failure's stderr),
# and the heartbeat storage built exactly as the test builds it.
PRELUDE = f"""
import os, sys, time, warnings
from pathlib import Path
import optuna
from optuna.trial import TrialState
optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.simplefilter("ignore")  # experimental heartbeat, deprecated names on some versions
url, name, workdir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
def heartbeat_storage():
    cb = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    kw = "heartbeat_stale_trial_callback"
    if cb is None:
        cb, kw = optuna.storages.RetryFailedTrialCallback, "failed_trial_callback"
    return optuna.storages.RDBStorage(url, **{HEARTBEAT!r}, **{{kw: cb(max_retry=1)}})
"""


def _spawn(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(script), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen, timeout: float = 60) -> None:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"worker exited {proc.returncode}:\n{out}{err}"


def _wait_for(paths: list[Path], procs: list[subprocess.Popen], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        for proc in procs:
            if proc.poll() is not None:  # died before getting there: show why
                _finish(proc)
        assert time.monotonic() < deadline, f"workers never wrote {paths}"
        time.sleep(0.05)


def test_two_processes_share_a_study(postgres_url, tmp_path):
    """Two worker processes fill one study up to MaxTrialsCallback's target."""
    target = 8
    name = f"shared-{uuid.uuid4().hex[:8]}"
    optuna.create_study(storage=postgres_url, study_name=name, load_if_exists=True)

    worker = f"""
    study = optuna.load_study(study_name=name, storage=url)
    (workdir / f"ready-{{os.getpid()}}").touch()
    # Start together, so both processes really take trials (one alone could finish them all
    # while the other is still importing optuna).
    while not (workdir / "go").exists():
        time.sleep(0.02)
    def objective(trial):
        x = trial.suggest_float("x", -10, 10)
        trial.set_user_attr("pid", os.getpid())
        time.sleep(0.1)
        return x * x
    study.optimize(objective, callbacks=[
        optuna.study.MaxTrialsCallback({target}, states=(TrialState.COMPLETE,))])
    """
    procs = [_spawn(worker, postgres_url, name, tmp_path) for _ in range(2)]
    _wait_for([tmp_path / f"ready-{p.pid}" for p in procs], procs)
    (tmp_path / "go").touch()
    for proc in procs:
        _finish(proc)

    trials = optuna.load_study(study_name=name, storage=postgres_url).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # MaxTrialsCallback stops a worker after a trial once `target` are COMPLETE; the other
    # worker may be mid-trial at that moment and finish it too, so with W workers the study
    # ends with target .. target + W - 1 trials (Optuna documents this overshoot).
    assert target <= len(complete) <= target + 1, [t.number for t in complete]
    assert len(complete) == len(trials)  # nothing left RUNNING or FAIL
    # Trial numbers come from the database: unique and gap-free across processes.
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert {t.user_attrs["pid"] for t in complete} == {p.pid for p in procs}


def test_killed_worker_trial_is_failed_and_retried(postgres_db, tmp_path):
    """A SIGKILLed worker's RUNNING trial goes stale; the next optimize fails it and retries."""
    name = "heartbeat"
    storage = optuna.storages.RDBStorage(
        postgres_db, **HEARTBEAT, **{RETRY_KWARG: RetryCallback(max_retry=1)}
    )
    optuna.create_study(storage=storage, study_name=name, load_if_exists=True)

    # Two victims, each hanging inside its own trial until killed.
    victim = """
    study = optuna.load_study(study_name=name, storage=heartbeat_storage())
    def objective(trial):
        trial.suggest_float("x", -10, 10)
        (workdir / f"running-{os.getpid()}").write_text(str(trial.number))
        time.sleep(120)
    study.optimize(objective, n_trials=1)
    """
    victims = [_spawn(victim, postgres_db, name, tmp_path) for _ in range(2)]
    try:
        _wait_for([tmp_path / f"running-{p.pid}" for p in victims], victims)
    finally:
        for proc in victims:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
    killed_at = time.monotonic()
    assert [p.returncode for p in victims] == [-signal.SIGKILL] * 2

    study = optuna.load_study(study_name=name, storage=storage)
    orphans = study.get_trials()
    assert sorted(t.number for t in orphans) == [0, 1]
    assert all(t.state == TrialState.RUNNING for t in orphans)  # nobody marked them
    params = {t.number: t.params for t in orphans}

    # A trial is stale once its last heartbeat is over grace_period seconds old.
    time.sleep(max(0.0, killed_at + HEARTBEAT["grace_period"] + 1 - time.monotonic()))
    rescuer = """
    study = optuna.load_study(study_name=name, storage=heartbeat_storage())
    def objective(trial):
        trial.set_user_attr("rescued_by", os.getpid())
        return trial.suggest_float("x", -10, 10) ** 2
    # Before asking for its trial, optimize calls fail_stale_trials: both orphans become FAIL
    # and the retry callback adds a WAITING copy of each; ask() then takes the first of them.
    study.optimize(objective, n_trials=1)
    """
    rescuer_proc = _spawn(rescuer, postgres_db, name, tmp_path)
    _finish(rescuer_proc)

    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert trials[0].state == trials[1].state == TrialState.FAIL
    # Trials 2 and 3 are the retries of 0 and 1 (in whichever order the stale trials were
    # found), with their parameters; the rescuer ran one, the other waits for the next worker.
    retries = {RetryCallback.retried_trial_number(t): t for t in trials[2:]}
    assert sorted(retries) == [0, 1]
    for original, t in retries.items():
        assert t.system_attrs["failed_trial"] == original
        assert t.system_attrs["retry_history"] == [original]
        assert t.params == params[original]
    done = [t for t in trials[2:] if t.state == TrialState.COMPLETE]
    waiting = [t for t in trials[2:] if t.state == TrialState.WAITING]
    assert len(done) == len(waiting) == 1
    assert done[0].user_attrs["rescued_by"] == rescuer_proc.pid


@pytest.mark.parametrize("run", [1, 2])
def test_postgres_db_is_fresh(postgres_db, run):
    """Each test gets its own empty database: a study made by one run is not seen by the next."""
    assert optuna.get_all_study_names(storage=postgres_db) == []
    optuna.create_study(storage=postgres_db, study_name="same-name-every-time")
