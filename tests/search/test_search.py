"""`grownet search` end to end on a tiny network: grow, sweep, estimate, verify, resume."""

import json
import os

import pytest

from grownet.cli import main
from grownet.graph import NetGraph
from grownet.report.load import check_stage, check_sweeps
from grownet.search import growing, runner
from grownet.search.runs import SearchInterrupted
from grownet.search.spec import load_spec

TINY = """
name = "tiny"
dataset = "digits"
[base]
model = "convnet"
options = {{ widths = [8, 16] }}
[train]
batch_size = 32
base_lr = 0.05
lr_policy = "cosine"
test_interval = 40
display_interval = 20
quiet = true
[growth]
insert_after = ["relu1_1", "relu2_1"]
stage_iters = 80
dropin_length = 40
stagger = {stagger}
max_stages = 1
[depth]
ratios = [0.5, 1e-3]
iters_per_ratio = 20
[width]
ratios = [0.75, 0.5, 0.25]
iters_per_ratio = 20
per_layer = {per_layer}
[verify]
iters = 60
tolerance = 0.2
backoff = 1
"""


def tiny_spec(tmp_path, *, stagger=0, per_layer="false"):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(stagger=stagger, per_layer=per_layer))
    return load_spec(path, runs_dir=str(tmp_path / "runs"))


def checkpoints(folder):
    return {p: os.stat(p).st_mtime_ns for p in folder.rglob("checkpoint.pt")}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("search")
    spec = tiny_spec(tmp, stagger=10)
    lines = []
    summary = runner.Search(spec, echo=lines.append, quiet=True).run()
    return spec, summary, lines, tmp / "runs" / "tiny"


def test_search_writes_the_evidence(searched):
    _, summary, lines, out = searched
    files = ["stages.jsonl", "sweeps.json", "graph.json", "weights.pt", "report.html",
             "search_summary.json", "summary.txt", "env.json", "graphs/stage_1.json"]  # fmt: skip
    for name in files:
        assert (out / name).exists(), name
    stages = [check_stage(json.loads(line)) for line in (out / "stages.jsonl").open()]
    assert [s["stage"] for s in stages] == [0, 1] and stages[1]["depth"] == 5
    assert "max_stages = 1" in stages[1]["decision"] or "does not pay" in stages[1]["decision"]
    sweeps = check_sweeps(json.loads((out / "sweeps.json").read_text()))
    # the DropIn sweep takes grown blocks out: it runs only when growth kept some
    swept = ["dropin", "width"] if summary["depth_pays"] else ["width"]
    assert [s["kind"] for s in sweeps] == swept
    graph = NetGraph.from_json(out / "graph.json")
    assert graph.num_params() == summary["recommended"]["params"]
    assert any(line.startswith("stage 1:") for line in lines)


def test_every_estimate_is_verified(searched):
    out = searched[3]
    for sweep in json.loads((out / "sweeps.json").read_text())["sweeps"]:
        if sweep["estimate"] is None:
            assert sweep["verification"] is None
            assert "no knee" in sweep["finding"] or "fewer than one" in sweep["finding"]
            continue
        check = sweep["verification"]
        assert check["reduced_params"] < check["full_params"]
        assert check["passed"] == (
            check["reduced_accuracy"] >= check["full_accuracy"] - check["allowed_drop"]
        )
        assert (out / "verify").is_dir() and sweep["attempts"][-1]["passed"] == check["passed"]


def test_asynchronous_dropin_is_in_the_grown_graph(searched):
    _, _, _, out = searched
    stage = json.loads((out / "stages.jsonl").read_text().splitlines()[1])
    starts = [b["start"] for b in stage["growth"]["blocks"]]
    assert starts == [0, 10]
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").open()]
    assert {r["stage"] for r in metrics} == {0, 1}
    assert max(r["iteration"] for r in metrics) == 160  # one curve across both stages


def test_rerun_redoes_nothing(searched):
    spec, summary, _, out = searched
    before = checkpoints(out)
    again = runner.Search(spec, echo=lambda s: None, quiet=True).run()
    assert checkpoints(out) == before
    assert again["recommended"] == summary["recommended"]


def test_interrupted_search_resumes_without_redoing_stages(tmp_path, monkeypatch, capsys):
    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(TINY.format(stagger=0, per_layer="false"))
    real = growing.train_run

    def stop_at_stage_1(spec, path, graph, **kw):
        if path.name == "stage_1":
            raise SearchInterrupted(f"interrupted in {path}")
        return real(spec, path, graph, **kw)

    monkeypatch.setattr(growing, "train_run", stop_at_stage_1)
    argv = ["search", str(spec_path), "--runs-dir", str(tmp_path / "runs"), "--quiet"]
    assert main(argv) == 130
    assert "rerun the same command to resume" in capsys.readouterr().err
    out = tmp_path / "runs" / "tiny"
    stage0 = checkpoints(out / "stages" / "stage_0")
    monkeypatch.setattr(growing, "train_run", real)
    assert main(argv) == 0
    assert checkpoints(out / "stages" / "stage_0") == stage0
    assert "resuming the search" in capsys.readouterr().out


def test_per_layer_width_sweeps(tmp_path):
    spec = tiny_spec(tmp_path, per_layer="true")
    summary = runner.Search(spec, echo=lambda s: None, quiet=True).run()
    sweeps = json.loads((tmp_path / "runs" / "tiny" / "sweeps.json").read_text())["sweeps"]
    swept = [s["layer"] for s in sweeps if s["kind"] == "width"]
    # one sweep per conv of the network the widths were swept on (grown blocks' too)
    assert swept[:2] == ["conv1_1", "conv2_1"] and len(swept) == summary["recommended"]["depth"] - 1


def test_another_spec_in_the_same_directory_is_refused(searched, tmp_path, capsys):
    out = searched[3]
    path = tmp_path / "other.toml"
    path.write_text(TINY.format(stagger=10, per_layer="false").replace("iters = 60", "iters = 61"))
    argv = ["search", str(path), "--runs-dir", str(out.parent), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "holds a search with another spec (differs in verify)" in err and err.count("\n") == 1


def test_a_stage_recorded_twice_leaves_one_curve(tmp_path, monkeypatch):
    """Killed between writing a stage's curve and its stage record, a rerun records it again:
    the top-level metrics must hold that stage's curve once."""
    spec = tiny_spec(tmp_path)
    real_append = runner.RunDir.append_jsonl
    kills = {"left": 1}

    def killed_before_the_stage_record(self, name, record):
        if name == "stages.jsonl" and kills["left"]:
            kills["left"] -= 1
            raise KeyboardInterrupt  # the kill lands just before stage 0 is recorded
        return real_append(self, name, record)

    monkeypatch.setattr(runner.RunDir, "append_jsonl", killed_before_the_stage_record)
    with pytest.raises(KeyboardInterrupt):
        runner.Search(spec, echo=lambda s: None, quiet=True).run()
    out = tmp_path / "runs" / "tiny"
    first = (out / "metrics.jsonl").read_text()
    assert first and not (out / "stages.jsonl").exists()
    runner.Search(spec, echo=lambda s: None, quiet=True).run()
    curve = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    keys = [(r["stage"], r["kind"], r["iteration"]) for r in curve]
    assert len(keys) == len(set(keys)) and {r["stage"] for r in curve} == {0, 1}


def test_a_held_search_directory_is_one_line(tmp_path, capsys):
    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(TINY.format(stagger=0, per_layer="false"))
    out = tmp_path / "runs" / "tiny"
    from grownet.train.rundir import RunDir

    with RunDir(out).lock():  # another writer (here: this process, before the command)
        argv = ["search", str(spec_path), "--runs-dir", str(tmp_path / "runs"), "--quiet"]
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"(PID {os.getpid()})" in err and err.count("\n") == 1


def test_ctrl_c_inside_a_search_then_rerun_is_exact(searched, tmp_path, monkeypatch, capsys):
    """One Ctrl-C while stage 1 trains: the search stops after that step, and the rerun gives
    the uninterrupted search's stages, curves and recommendation to the bit."""
    import signal

    from grownet.train.trainer import Trainer

    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(TINY.format(stagger=10, per_layer="false"))  # the fixture's
    real, calls = Trainer.evaluate, {"n": 0}

    def ctrl_c_in_stage_1(self, plan):
        calls["n"] += 1
        if self.run_dir.path.name == "stage_1" and calls["n"] < 100:
            calls["n"] = 100  # once
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, plan)

    monkeypatch.setattr(Trainer, "evaluate", ctrl_c_in_stage_1)
    argv = ["search", str(spec_path), "--runs-dir", str(tmp_path / "runs"), "--quiet"]
    assert main(argv) == 130
    monkeypatch.undo()
    assert main(argv) == 0
    out, full = tmp_path / "runs" / "tiny", searched[3]
    for name in ("stages.jsonl", "metrics.jsonl"):
        mine = [json.loads(x) for x in (out / name).read_text().splitlines()]
        theirs = [json.loads(x) for x in (full / name).read_text().splitlines()]
        drop = {"wall_time_s", "stage_time_s", "images_per_s"}
        assert [{k: v for k, v in r.items() if k not in drop} for r in mine] == [
            {k: v for k, v in r.items() if k not in drop} for r in theirs
        ]
    summary = json.loads((out / "search_summary.json").read_text())
    expected = json.loads((full / "search_summary.json").read_text())
    for key in ("depth", "widths", "params", "accuracy"):
        assert summary["recommended"][key] == expected["recommended"][key]
