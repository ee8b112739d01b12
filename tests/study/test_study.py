"""`grownet study` end to end on the embedded digits: trials, pruning, resume, workers, retries."""

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from grownet.cli import main
from grownet.study import runner as study_runner
from grownet.study.objective import Pruning, mixed_by
from grownet.study.spec import load_study_spec
from grownet.study.storage import open_storage
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
