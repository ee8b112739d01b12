"""`grownet study` end to end on the embedded digits: trials, pruning, resume, workers, retries."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from grownet.cli import main
from grownet.study import runner as study_runner
from grownet.study.objective import Pruning, mixed_by
from grownet.study.spec import load_study_spec
from grownet.study.storage import fail_dead_trials, open_storage
from grownet.zoo import build

SPEC = """
name = "tiny"
dataset = "digits"
[study]
objectives = {objectives}
sampler = "random"
heartbeat_s = {heartbeat}
[base]
model = "convnet"
[train]
batch_size = 32
base_lr = 0.05
max_iter = {max_iter}
test_interval = 20
display_interval = 10
checkpoint_interval = {checkpoint}
device = "cpu"
threads = 1
[space.model.widths]
type = "categorical"
choices = [4, 8, 16]
length = 2
"""


def spec_file(
    tmp_path, *, objectives='["accuracy", "params"]', max_iter=40, checkpoint=0, heartbeat=5
):
    # A 1 s heartbeat where a worker is killed on purpose: its grace period passes quickly.
    # Elsewhere 5 s: two workers on two loaded cores can starve a heartbeat thread for 2 s.
    path = tmp_path / "tiny.toml"
    path.write_text(SPEC.format(objectives=objectives, max_iter=max_iter, checkpoint=checkpoint,
                                heartbeat=heartbeat))  # fmt: skip
    return path


def trials(storage: str, name: str = "tiny") -> list:
    opened = open_storage(storage, heartbeat_s=1)  # a URL, or a journal file's path
    return optuna.load_study(study_name=name, storage=opened).get_trials(deepcopy=False)


def count(found, state) -> int:
    return sum(t.state == state for t in found)


def test_a_study_trains_every_trial_as_a_run_directory(tmp_path, capsys):
    argv = ["study", str(spec_file(tmp_path)), "--runs-dir", str(tmp_path), "--quiet",
            "--trials", "3"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    study = tmp_path / "tiny"
    found = trials(f"sqlite:///{study / 'study.db'}")
    assert count(found, TrialState.COMPLETE) == 3 and "Pareto set by accuracy, params" in out
    for t in found:
        run = study / t.user_attrs["run_dir"]
        assert json.loads((run / "result.json").read_text())["iterations"] == 40
        assert t.values[1] == t.user_attrs["params"]
        assert t.user_attrs["widths"]["conv1_1"] == t.params["model.widths[0]"]
        assert {"depth", "flops", "accuracy", "status", "train_time_s", "ms_per_iter"} <= set(
            t.user_attrs
        )
    summary = json.loads((study / "study_summary.json").read_text())
    assert summary["trials"] == {"complete": 3} and summary["best"]
    # the same command again: nothing is redone; more trials continue the same study
    assert main(argv) == 0
    assert count(trials(f"sqlite:///{study / 'study.db'}"), TrialState.COMPLETE) == 3
    assert main([*argv[:-2], "--trials", "4"]) == 0
    found = trials(f"sqlite:///{study / 'study.db'}")
    assert len(found) == 4 and count(found, TrialState.COMPLETE) == 4


def test_another_spec_in_the_same_directory_is_refused(tmp_path, capsys):
    argv = ["study", str(spec_file(tmp_path)), "--runs-dir", str(tmp_path), "--trials", "1",
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    spec_file(tmp_path, max_iter=60)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "holds a study with another spec (differs in tables)" in err and err.count("\n") == 1


def test_a_pruned_trial_stops_cleanly_with_its_curve(tmp_path, monkeypatch):
    # a pruner that gives up on every trial at its first report past the warm-up
    monkeypatch.setattr(study_runner, "make_pruner", lambda spec: optuna.pruners.ThresholdPruner(
        lower=1.01))  # fmt: skip
    argv = ["study", str(spec_file(tmp_path, objectives='["accuracy"]')), "--runs-dir",
            str(tmp_path), "--trials", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    (trial,) = trials(f"sqlite:///{tmp_path / 'tiny' / 'study.db'}")
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [20]
    run = tmp_path / "tiny" / trial.user_attrs["run_dir"]
    result = json.loads((run / "result.json").read_text())
    assert (result["status"], result["iterations"]) == ("pruned", 20)
    tests = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["accuracy"] for r in tests if r["kind"] == "test"] == [trial.intermediate_values[20]]


class FakeTrial:
    def __init__(self, prune: bool) -> None:
        self.reports, self.prune = [], prune

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return self.prune


def test_a_network_mixing_in_dropin_is_not_pruned_mid_growth():
    graph = build("lenet2n", n=2, dropin_length=300)
    trial = FakeTrial(prune=True)
    pruning = Pruning(trial, mixed_by=mixed_by(graph))
    assert [pruning.on_evaluate(None, it, 0.1) for it in (100, 200)] == [None, None]
    assert pruning.on_evaluate(None, 300, 0.1).status == "pruned"
    assert trial.reports == [(100, 0.1), (200, 0.1), (300, 0.1)]  # every value reported


def worker(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "grownet", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


@pytest.mark.parametrize("storage", ["journal", "postgres"])
def test_two_workers_make_exactly_the_trials_asked(tmp_path, storage, request):
    url = (str(tmp_path / "tiny.journal") if storage == "journal"
           else request.getfixturevalue("postgres_db"))  # fmt: skip
    argv = ["study", str(spec_file(tmp_path)), "--runs-dir", str(tmp_path), "--trials", "6",
            "--storage", url, "--quiet"]  # fmt: skip
    procs = [worker(argv) for _ in range(2)]  # two independent commands, as on two machines
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    found = trials(url)
    complete = [t for t in found if t.state == TrialState.COMPLETE]
    assert len(complete) == 6 and len({t.number for t in complete}) == 6
    for t in complete:
        assert (tmp_path / "tiny" / t.user_attrs["run_dir"] / "result.json").exists()
    assert all(t.user_attrs.get("surplus") for t in found if t.state == TrialState.FAIL)


@pytest.mark.parametrize("storage", ["journal", "postgres"])
def test_a_killed_worker_s_trial_fails_and_is_retried_in_its_directory(
    tmp_path, storage, request
):
    url = (str(tmp_path / "tiny.journal") if storage == "journal"
           else request.getfixturevalue("postgres_db"))  # fmt: skip
    path = spec_file(tmp_path, objectives='["accuracy"]', max_iter=1000, checkpoint=20,
                     heartbeat=1)  # fmt: skip
    argv = ["study", str(path), "--runs-dir", str(tmp_path), "--trials", "2", "--storage", url,
            "--quiet"]  # fmt: skip
    victim = worker(argv)
    checkpoint = tmp_path / "tiny" / "trials" / "0" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists(), "the first trial never checkpointed"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert count(trials(url), TrialState.RUNNING) == 1
    time.sleep(2.5)  # past the heartbeat's grace period (2 x heartbeat_s)
    again = worker(argv)
    output = again.communicate(timeout=240)[0]
    assert again.returncode == 0, output
    assert "trial 0: its worker died; failed, and enqueued again" in output
    found = trials(url)
    assert [t.number for t in found if t.state == TrialState.FAIL] == [0]
    retry = next(t for t in found if t.state == TrialState.COMPLETE and t.number > 0
                 and t.user_attrs["run_dir"] == "trials/0")  # fmt: skip
    assert retry.params == found[0].params
    assert count(found, TrialState.COMPLETE) == 2
    result = json.loads((tmp_path / "tiny" / "trials" / "0" / "result.json").read_text())
    assert result["iterations"] == 1000


# A worker that dies at one step of a trial's start, run as `python -c VICTIM STEP ARGV...`:
# the step's function is patched to end the process there, as a SIGKILL would (no cleanup).
VICTIM = """
import os, sys
from grownet import files
from grownet.cli import main
from grownet.study.storage import TrialLocks
from grownet.train import checkpoint

def die(*args):
    os._exit(9)

def torn_save(path, write):
    with files.atomic_writer(path, binary=True) as f:
        f.write(b"half a checkpoint")
        f.flush()
        die()

hold = TrialLocks.hold
step = sys.argv[1]
if step == "before its lock":  # Optuna created the trial, which holds no lock yet
    TrialLocks.hold = die
elif step == "after its lock":  # before its run_dir attribute and its run directory
    TrialLocks.hold = lambda self, number: (hold(self, number), die())
elif step == "mid-save":  # training, its first checkpoint half written
    checkpoint.atomic_save = torn_save
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("step", ["before its lock", "after its lock", "mid-save"])
def test_a_worker_dead_at_any_step_of_a_trial_s_start_is_retried(tmp_path, step):
    url = str(tmp_path / "tiny.journal")
    path = spec_file(tmp_path, objectives='["accuracy"]', checkpoint=20)
    argv = ["study", str(path), "--runs-dir", str(tmp_path), "--trials", "2", "--storage", url,
            "--quiet"]  # fmt: skip
    victim = subprocess.run([sys.executable, "-c", VICTIM, step, *argv], capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert victim.returncode == 9, victim.stdout + victim.stderr  # it died where it was told
    assert [t.state for t in trials(url)] == [TrialState.RUNNING]
    # a rerun and a second worker beside it: neither may wait for the dead trial for good
    procs = [worker(argv) for _ in range(2)]
    try:
        outputs = [p.communicate(timeout=180)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sum("trial 0: its worker died; failed, and enqueued again" in o for o in outputs) == 1
    found = trials(url)
    assert [t.number for t in found if t.state == TrialState.FAIL] == [0]
    assert count(found, TrialState.COMPLETE) == 2 and count(found, TrialState.RUNNING) == 0
    retry = next(t for t in found if t.system_attrs.get("failed_trial") == 0)
    assert retry.state == TrialState.COMPLETE and retry.params == found[0].params
    # the run directory is the dead trial's once it had one (the retry resumed it)
    assert (retry.user_attrs["run_dir"] == "trials/0") == (step == "mid-save")
    assert not list((tmp_path / "tiny" / "trials").glob("*/.checkpoint.pt.*.tmp"))
    assert all("lock" not in t.user_attrs for t in found)  # lock paths need no attribute


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_retried(tmp_path):
    """A relational storage: Optuna creates the trial, then its heartbeat thread writes the
    first beat; a worker killed between the two leaves a trial its stale check skips."""
    storage = open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat_s=1)
    study = optuna.create_study(storage=storage, study_name="s")
    long_ago = datetime.now() - timedelta(seconds=60)
    for attrs, start in (({}, long_ago), ({}, datetime.now()), ({"run_dir": "t/2"}, long_ago)):
        storage.create_new_trial(study._study_id, template_trial=FrozenTrial(
            number=0, state=TrialState.RUNNING, value=None, datetime_start=start,
            datetime_complete=None, params={"x": 1.0}, user_attrs=attrs, system_attrs={},
            distributions={"x": optuna.distributions.FloatDistribution(0, 2)},
            intermediate_values={}, trial_id=0))  # fmt: skip
    assert fail_dead_trials(study, tmp_path) == [0]  # not the new one, not one that started
    found = study.get_trials()
    assert [t.state for t in found] == [TrialState.FAIL, TrialState.RUNNING,
                                        TrialState.RUNNING, TrialState.WAITING]  # fmt: skip
    assert found[3].system_attrs["failed_trial"] == 0 and found[3].params == {"x": 1.0}


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc), zombies left out."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(stat.parent.name))
    return found


def _worker_number(pid: int) -> str:
    args = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    return args[args.index("--worker") + 1]


def _wait_for(what, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not (found := what()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def _alive(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


# /proc lists a command's workers; two of them need two cores (--workers is capped at the cores)
TWO_WORKERS = pytest.mark.skipif(
    not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2,
    reason="reads /proc; needs two cores for two workers",
)


@TWO_WORKERS
def test_workers_are_capped_and_a_killed_one_does_not_fail_a_finished_study(tmp_path):
    path = spec_file(tmp_path, objectives='["accuracy"]', max_iter=200)
    argv = ["study", str(path), "--runs-dir", str(tmp_path), "--trials", "3", "--workers",
            "100000", "--quiet"]  # fmt: skip
    parent = worker(argv)
    try:
        started = _wait_for(lambda: c if len(c := _children(parent.pid)) >= 2 else [])
        # the worker holding the first trial's lock (its PID is written in the lock file)
        locks = tmp_path / "tiny" / "trials"
        held = _wait_for(lambda: [p for p in locks.glob(".trial-*-[0-9]*.lock")
                                  if p.read_text().strip() in map(str, started)])  # fmt: skip
        victim = int(held[0].read_text())
        number = _worker_number(victim)
        os.kill(victim, signal.SIGKILL)
        output = parent.communicate(timeout=240)[0]
    finally:
        parent.kill()
    assert parent.returncode == 0, output
    cpus = os.cpu_count() or 1
    why = f"this machine has {cpus} CPU cores" if cpus <= 3 else "3 of 3 trials are left"
    assert f"--workers 100000: {why}; starting {min(cpus, 3)} workers" in output
    assert f"worker {number} died (killed by SIGKILL); the other workers retried" in output
    assert count(trials(str(tmp_path / "tiny" / "study.journal")), TrialState.COMPLETE) == 3


@TWO_WORKERS
def test_no_worker_outlives_a_killed_command(tmp_path):
    path = spec_file(tmp_path, objectives='["accuracy"]', max_iter=1000)
    argv = ["study", str(path), "--runs-dir", str(tmp_path), "--trials", "4", "--workers",
            "2", "--quiet"]  # fmt: skip
    parent = worker(argv)
    workers = _wait_for(lambda: c if len(c := _children(parent.pid)) >= 2 else [])
    try:
        # mid-trial: a trial holds its lock
        assert _wait_for(lambda: list((tmp_path / "tiny" / "trials").glob(".trial-*-[0-9]*.lock")))
        parent.kill()  # SIGKILL: the command runs no cleanup of its own
        parent.wait()
        assert _wait_for(lambda: not any(map(_alive, workers)), timeout=60), "a worker outlived it"
    finally:  # this test's own workers, should it fail
        parent.kill()
        for pid in filter(_alive, workers):
            os.kill(pid, signal.SIGKILL)


@TWO_WORKERS
def test_a_worker_that_cannot_start_stops_the_ones_started(tmp_path, capsys, monkeypatch):
    started, real = [], subprocess.Popen

    def popen(*args, **kwargs):
        if started:
            raise BlockingIOError(11, "Resource temporarily unavailable")  # fork's EAGAIN
        started.append(real(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(study_runner.subprocess, "Popen", popen)
    argv = ["study", str(spec_file(tmp_path)), "--runs-dir", str(tmp_path), "--trials", "2",
            "--workers", "2", "--quiet"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--workers 2: worker 1 could not be started (Resource temporarily unavailable)" in err
    assert err.count("\n") == 1
    assert started[0].poll() is not None  # stopped and waited for, not left running


def test_ctrl_c_stops_a_study_and_the_same_command_continues_it(tmp_path):
    path = spec_file(tmp_path, objectives='["accuracy"]', max_iter=1000, checkpoint=20)
    argv = ["study", str(path), "--runs-dir", str(tmp_path), "--trials", "2", "--quiet"]
    first = worker(argv)
    checkpoint = tmp_path / "tiny" / "trials" / "1" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)  # while trial 1 trains
    output = first.communicate(timeout=120)[0]
    assert first.returncode == 130, output
    assert "trial 1 interrupted" in output and "Traceback" not in output
    again = worker(argv)
    output = again.communicate(timeout=240)[0]
    assert again.returncode == 0, output
    found = trials(f"sqlite:///{tmp_path / 'tiny' / 'study.db'}")
    assert [(t.number, t.state) for t in found] == [
        (0, TrialState.COMPLETE), (1, TrialState.FAIL), (2, TrialState.COMPLETE)
    ]  # trial 0 is not redone; trial 2 is trial 1 continued
    assert found[1].user_attrs["interrupted"] and found[2].user_attrs["run_dir"] == "trials/1"
    assert found[2].params == found[1].params
    result = json.loads((tmp_path / "tiny" / "trials" / "1" / "result.json").read_text())
    assert result["iterations"] == 1000 and not (tmp_path / "tiny" / "trials" / "2").exists()


def test_spec_default_trials_and_workers_flag_are_checked(tmp_path, capsys):
    spec = load_study_spec(spec_file(tmp_path))
    assert spec.n_trials == 20
    assert main(["study", str(spec_file(tmp_path)), "--runs-dir", str(tmp_path),
                 "--workers", "0"]) == 2  # fmt: skip
    assert "--workers must be >= 1, got 0" in capsys.readouterr().err


SEARCH = """
name = "tiny_search"
dataset = "digits"
[base]
model = "convnet"
options = { widths = [8, 16] }
[train]
batch_size = 32
base_lr = 0.05
test_interval = 40
display_interval = 20
device = "cpu"
threads = 1
quiet = true
[growth]
insert_after = ["relu1_1"]
stage_iters = 40
dropin_length = 20
max_stages = 1
[depth]
enabled = false
[width]
enabled = false
[verify]
iters = 20
tolerance = 0.5
"""


def test_a_study_of_growth_searches_scores_each_recommendation(tmp_path, capsys):
    (tmp_path / "tiny_search.toml").write_text(SEARCH)
    (tmp_path / "s.toml").write_text(
        f"[study]\nkind = 'search'\nsearch = '{tmp_path / 'tiny_search.toml'}'\n"
        "objectives = ['accuracy', 'params']\nsampler = 'grid'\n"
        "[space.growth.dropin_length]\ntype = 'categorical'\nchoices = [10, 40]\n"
    )
    argv = ["study", str(tmp_path / "s.toml"), "--runs-dir", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    found = trials(f"sqlite:///{tmp_path / 's' / 'study.db'}", name="s")
    assert [t.state for t in found] == [TrialState.COMPLETE] * 2
    for t in found:
        summary = json.loads(
            (tmp_path / "s" / t.user_attrs["run_dir"] / "search_summary.json").read_text()
        )
        assert t.values == [summary["recommended"]["accuracy"], summary["recommended"]["params"]]
        assert t.user_attrs["status"] == "search finished"
    assert sorted(t.params["growth.dropin_length"] for t in found) == [10, 40]
