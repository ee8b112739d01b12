"""Reports drawn from real run directories: the figures hold exactly the runs' numbers."""

import json
import math
import shutil
from pathlib import Path

import pytest

from grownet.cli import main
from grownet.graph import NetGraph
from grownet.graph.executor import exclusive_branches
from grownet.report import build_sections, load_evidence, try_write_report, write_report
from grownet.report.figures import SHARE_LIMITS, integer_step, learning_curves
from grownet.report.load import Run, SchemaError, check_bench, check_stage, check_sweeps
from grownet.report.network import network_figure
from grownet.report.page import plotly_home
from grownet.zoo import build, convnet, mlp

STAGE = {"stage": 0, "depth": 3, "params": 5178, "flops": 81920, "test_accuracy": 0.71,
         "wall_time_s": 1.0}  # fmt: skip


def figures_of(*paths: Path) -> dict:
    sections = build_sections(load_evidence(list(paths)))
    return {key: fig for s in sections for key, fig in s.figures.items()}


def records(run: Path, kind: str) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def trace(fig, name: str):
    found = [t for t in fig.data if t.name == name]
    assert len(found) == 1, [t.name for t in fig.data]
    return found[0]


def test_the_trainer_writes_an_offline_report(demo):
    run = demo / "plain"
    page = (run / "report.html").read_text()
    # one plotly.js for the folder of runs, not one per report
    assert (demo / "plotly.min.js").stat().st_size > 1_000_000
    assert not (run / "plotly.min.js").exists() and not (demo / "grown" / "plotly.min.js").exists()
    assert "<script src='../plotly.min.js'" in page
    assert "https://" not in page.split("<body>")[0]  # no CDN, no remote script or style
    assert (demo / "report.html").exists()  # `grownet reproduce` drew the recipe's report


def test_learning_curves_hold_exactly_the_metrics(demo):
    run = demo / "plain"
    figs = figures_of(run)
    for key in ("accuracy", "loss"):
        for kind in ("test", "train"):
            expected = records(run, kind)
            t = trace(figs[key], f"plain {kind}")
            assert list(t.x) == [r["iteration"] for r in expected]
            assert list(t.y) == [r[key] for r in expected]
    assert list(trace(figs["accuracy"], "plain test").x) == [20, 40]
    errors = trace(figs["error-time"], "plain")
    assert list(errors.y) == pytest.approx([1 - r["accuracy"] for r in records(run, "test")])


def test_the_signal_map_holds_every_layer_at_every_test(demo, tmp_path):
    run = demo / "plain"
    tests = records(run, "test")
    heat = figures_of(run)["signal-0"].data[0]
    layers = list(tests[-1]["signal"])
    assert list(heat.y) == layers and list(heat.x) == [r["iteration"] for r in tests]
    assert [list(row) for row in heat.customdata] == [
        [r["signal"][name] for r in tests] for name in layers
    ]
    assert heat.z[0][0] == pytest.approx(math.log10(tests[0]["signal"][layers[0]]))
    old = tmp_path / "old"  # a run from before the trainer measured the signal
    shutil.copytree(run, old)
    (old / "metrics.jsonl").write_text("".join(
        json.dumps({k: v for k, v in r.items() if k != "signal"}) + "\n"
        for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())))  # fmt: skip
    assert not any(key.startswith("signal") for key in figures_of(old))


def test_dropin_q_is_on_a_secondary_axis(demo):
    run = demo / "grown"
    q = trace(figures_of(run)["accuracy"], "grown q conv1_2_dropin")
    train = records(run, "train")
    assert q.yaxis == "y2"
    assert list(q.y) == [r["dropin_q"]["conv1_2_dropin"] for r in train]
    assert q.y[0] == pytest.approx(1 - 9 / 30) and q.y[-1] == 0.0


def node_traces(fig) -> list:
    return [t for t in fig.data if t.meta == "node"]


def test_network_has_one_marker_per_node_and_marks_gated_branches(demo):
    figs = figures_of(demo / "grown")
    graph = NetGraph.from_json(demo / "grown" / "graph.json")
    before = NetGraph.from_json(demo / "grown" / "graph_before.json")
    drawn = {len(graph): None, len(before): None}
    for key in ("network-0", "network-1"):
        nodes = [n for t in node_traces(figs[key]) for n in t.customdata]
        assert len(nodes) == len(set(nodes))
        drawn[len(nodes)] = set(nodes)
    assert drawn[len(graph)] == set(graph.nodes) and drawn[len(before)] == set(before.nodes)
    after = next(figs[k] for k in ("network-0", "network-1") if "grown: graph.json" in
                 figs[k].layout.title.text)  # fmt: skip
    by_name = {t.name: t for t in node_traces(after)}
    assert list(by_name["dropin"].customdata) == ["conv1_2_dropin"]
    assert by_name["dropin"].marker.symbol == "star"
    branch = {n for nodes in exclusive_branches(graph).values() for n in nodes}
    gated = {n for name, t in by_name.items() if "gated branch" in name for n in t.customdata}
    assert gated == branch == {"conv1_2"}


def test_only_branches_a_gate_can_skip_are_marked():
    graph = build("cifar_resnet", depth=14, depth_dropout=0.5, shortcut="conv1x1")
    fig = network_figure(graph, title="ResNet-14")
    gated = {n for t in node_traces(fig) if "gated branch" in t.name for n in t.customdata}
    assert "layer1_1_conv1" in gated  # dropped with p = 0.5
    assert "layer1_0_conv1" not in gated  # the exempt first unit of a stage (drop_prob 0)
    assert "layer1_1_shortcut_conv" not in gated  # a depth-dropout shortcut always runs
    assert sum(len(t.x) for t in node_traces(fig)) == len(graph)


def test_network_nodes_say_their_op_and_width():
    fig = network_figure(convnet(widths=(8, 32)), title="convnet")
    at = {n: (t, i) for t in node_traces(fig) for i, n in enumerate(t.customdata)}
    conv, i = at["conv2_1"]
    assert conv.mode == "markers+text" and conv.text[i] == "conv<br>32 channels"
    assert "conv2_1</b> (conv): 32 channels" in conv.hovertext[i]
    assert at["fc"][0].text[at["fc"][1]] == "linear<br>10 units"

    def size(node: str) -> float:
        trace, j = at[node]
        return trace.marker.size[j]

    assert size("input") < size("conv1_1") < size("conv2_1")  # 1, 8, 32 channels
    # Too many layers to label: no room, so the width is in the marker's size and the hover.
    deep = network_figure(mlp(widths=(16,) * 12), title="mlp")
    assert {t.mode for t in node_traces(deep)} == {"markers"}
    assert all("units" in text for t in node_traces(deep) for text in t.hovertext)


def test_stages_sweeps_benchmarks_and_studies_have_figures(demo):
    run = demo / "grown"
    figs = figures_of(run)
    stages = [json.loads(line) for line in (run / "stages.jsonl").read_text().splitlines()]
    depth = trace(figs["depth"], "grown")
    assert list(depth.x) == [s["depth"] for s in stages]
    assert list(depth.y) == [s["test_accuracy"] for s in stages]
    assert [row[1] for row in depth.customdata] == [s["params"] for s in stages]

    width = figs["sweep-0-0"]
    names = [t.name for t in width.data]
    assert names == ["test error", "full network: 0.1000", "knee at 0.5",
                     "estimate at 0.5 → 8 of 16 channels"]  # fmt: skip
    assert "verification: passed" in width.layout.annotations[0].text
    assert [t.name for t in figs["sweep-0-1"].data] == ["test error"]

    saving = figs["bench-saving-0-1"]  # files in name order: bench-executor.json, bench.json
    theory = trace(saving, "theory")
    assert list(theory.y) == [0.0, 0.123, 0.346, 0.567]
    assert list(trace(saving, "measured, skip").x) == [0.25, 0.5, 0.75]
    rows = json.loads((run / "bench.json").read_text())["rows"]
    assert len(trace(figs["bench-time-0-1"], "forward").x) == len(rows)
    assert "bench-saving-0-0" not in figs  # the executor benchmark has no rows: a table only
    bench = next(s for s in build_sections(load_evidence([run])) if s.id == "bench")
    assert any("1x1 shortcuts at p=0 add 3.0 ms" in c for c in bench.content)

    studies = {k for k in figs if k.startswith("study-")}
    assert studies == {
        "study-0-search-history", "study-0-search-parallel", "study-0-search-importance",
        "study-0-pareto-pareto", "study-0-pareto-history-0", "study-0-pareto-history-1",
        "study-0-pareto-importance", "study-0-pareto-parallel",
    }  # fmt: skip


def shares(fig) -> list[float]:
    """The y values of a figure's traces on its first y axis (not the DropIn q's)."""
    return [y for t in fig.data if t.yaxis in (None, "y") for y in t.y if y is not None]


def test_accuracy_and_error_axes_fit_their_data(demo):
    figs = figures_of(demo / "grown")
    for key in ("accuracy", "error-time", "depth", "sweep-0-0", "sweep-0-1"):
        low, high = figs[key].layout.yaxis.range
        values = shares(figs[key])
        assert SHARE_LIMITS[0] <= low < min(values) and max(values) < high <= SHARE_LIMITS[1]
    low, high = figs["depth"].layout.yaxis.range  # 71 to 88 % and their 95 % intervals
    assert high - low < 0.4
    run = Run(path=Path("r"), label="r", test=[
        {"kind": "test", "iteration": 10 * i, "accuracy": a}
        for i, a in enumerate((0.91, 0.95, 0.97), 1)])  # fmt: skip
    assert learning_curves([run])["accuracy"].layout.yaxis.range == pytest.approx((0.9, 0.98))


@pytest.mark.parametrize("per_token", [True, False])
def test_a_language_models_loss_reads_in_nats_and_bits(per_token):
    records = [{"kind": "test", "iteration": 10 * i, "loss": v, "accuracy": 0.5,
                **({"bits": v / math.log(2)} if per_token else {})}
               for i, v in enumerate((2.4, 1.9, 1.6), 1)]  # fmt: skip
    layout = learning_curves([Run(path=Path("r"), label="r", test=records)])["loss"].layout
    if not per_token:
        assert "yaxis2" not in layout and layout.yaxis.title.text == "cross-entropy loss"
        return
    low, high = layout.yaxis.range
    assert low < 1.6 and high > 2.4 and "nats" in layout.yaxis.title.text
    assert layout.yaxis2.range == pytest.approx((low / math.log(2), high / math.log(2)))
    assert layout.yaxis2.title.text == "bits per token" and layout.yaxis2.overlaying == "y"


def test_depth_axes_tick_on_whole_numbers(demo):
    axis = figures_of(demo / "grown")["depth"].layout.xaxis
    assert (axis.tick0, axis.dtick, axis.tickformat) == (0, 1, "d")
    assert [integer_step(span) for span in (2, 8, 9, 40, 1000)] == [1, 1, 2, 5, 200]


def test_recipe_directory_overlays_every_case_beside_the_paper_table(demo):
    sections = {s.id: s for s in build_sections(load_evidence([demo]))}
    assert {"plain test", "grown test"} <= {t.name for t in sections["curves"].figures[
        "accuracy"].data}  # fmt: skip
    table = next(item for item in sections["paper-0"].content if "<table" in item)
    summary = json.loads((demo / "summary.json").read_text())
    for case in summary["cases"]:
        assert f"<td>{case['case']}</td>" in table and f"<td>{case['status']}</td>" in table


def test_several_runs_overlay_in_one_report(demo, tmp_path):
    out = write_report([demo / "plain", demo / "grown"], out=tmp_path / "both.html")
    assert out == tmp_path / "both.html" and (tmp_path / "plotly.min.js").exists()
    accuracy = figures_of(demo / "plain", demo / "grown")["accuracy"]
    plain, grown = trace(accuracy, "plain test"), trace(accuracy, "grown test")
    assert plain.line.color != grown.line.color
    assert "plain" in out.read_text() and "grown" in out.read_text()


def test_a_corrupt_metrics_line_is_skipped_with_a_warning(demo, tmp_path):
    run = Path(shutil.copytree(demo / "plain", tmp_path / "plain"))
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines.insert(2, '{"kind": "train", "itera')  # a torn line in the middle
    (run / "metrics.jsonl").write_text("\n".join(lines) + '\n{"kind": "test", "iter')
    with pytest.warns(UserWarning, match="corrupt line"):
        out = write_report(run)
    assert "skipped a corrupt line" in out.read_text()  # the page says what it left out
    with pytest.warns(UserWarning):
        test = trace(figures_of(run)["accuracy"], "plain test")
    assert list(test.x) == [20, 40]


def test_a_run_in_progress_is_reported(tmp_path):
    run = tmp_path / "live"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "convnet", "max_iter": 100}))
    (run / "metrics.jsonl").write_text(
        '{"kind": "train", "iteration": 10, "loss": 2.0, "accuracy": 0.2, "lr": 0.1}\n'
        '{"kind": "train", "iteration": 20, "loss": "nan", "accuracy": 0.1, "lr": 0.1}\n'
    )
    page = write_report(run).read_text()
    assert "in progress" in page and "20 / 100" in page
    loss = trace(figures_of(run)["loss"], "live train")
    assert list(loss.y) == [2.0, None]  # a diverged loss is a gap, not a crash


def test_off_schema_files_are_skipped_and_the_rest_drawn(demo, tmp_path):
    run = Path(shutil.copytree(demo / "grown", tmp_path / "grown"))
    (run / "stages.jsonl").write_text(json.dumps(STAGE) + '\n{"stage": 1, "depth": "4"}\n')
    (run / "sweeps.json").write_text('{"sweeps": [{"kind": "height"}]}')
    (run / "bench.json").write_text("{not json")
    (run / "study.db").write_bytes(b"not a database")
    with pytest.warns(UserWarning) as caught:
        sections = build_sections(load_evidence([run]))
    messages = " ".join(str(w.message) for w in caught)
    assert "'depth' must be an integer, got '4'" in messages
    assert "'kind' must be one of" in messages and "not readable JSON" in messages
    assert "study.db not read" in messages
    figs = {k for s in sections for k in s.figures}
    assert "depth" in figs and not any(k.startswith(("sweep", "bench", "study")) for k in figs)
    studies = next(s for s in sections if s.id == "studies")
    assert "study.db not read" in studies.content[0]


@pytest.mark.parametrize(
    ("check", "data", "match"),
    [
        (check_stage, {**STAGE, "flops": 1.5}, "'flops' must be an integer, got 1.5"),
        (check_stage, [1, 2], "expected a JSON object, got list"),
        (check_sweeps, {"sweeps": {}}, "'sweeps' must be a list"),
        (check_sweeps, {"sweeps": [{"kind": "width", "layer": 3}]}, "'layer' must be a string"),
        (check_sweeps, {"sweeps": [{"kind": "depth", "points": []}]}, "non-empty list"),
        (check_sweeps, {"sweeps": [{"kind": "depth", "points": [{"ratio": 0.5}]}]},
         "point 0: 'error' must be a number, got None"),
        (check_sweeps, {"sweeps": [{"kind": "depth", "points": [{"ratio": 1, "error": 0}],
                                    "verification": {"full_accuracy": 1, "reduced_accuracy": 1,
                                                     "passed": "yes"}}]},
         "'passed' must be true or false, got 'yes'"),
        (check_bench, {"rows": []}, "'benchmark' must be a string"),
        (check_bench, {"benchmark": "b", "rows": [{"ratio": 0.5}]}, "row 0: 'forward_ms'"),
        (check_bench, {"benchmark": "b", "findings": "slow"}, "'findings' must be a list"),
    ],
)  # fmt: skip
def test_schema_mistakes_are_named(check, data, match):
    with pytest.raises(SchemaError, match=match):
        check(data)


def test_command_line_report_and_its_one_line_errors(demo, tmp_path, capsys, monkeypatch):
    out = tmp_path / "cli" / "r.html"
    assert main(["report", str(demo / "plain"), "-o", str(out)]) == 0
    assert out.exists() and f"report written to {out}" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)  # several runs, no -o: ./report.html
    assert main(["report", str(demo / "plain"), str(demo / "grown")]) == 0
    assert (tmp_path / "report.html").exists() and (tmp_path / "plotly.min.js").exists()
    capsys.readouterr()
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "empty", tmp_path / "missing"):
        assert main(["report", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{path} is not a run directory" in err
    assert "no such directory" in err and not (tmp_path / "missing").exists()  # not made either


def test_a_failed_report_never_fails_the_caller(tmp_path):
    with pytest.warns(UserWarning, match="report not written"):
        assert try_write_report(tmp_path / "missing") is None


@pytest.mark.parametrize("study", [b"", None])  # an empty file, and the demo's real storage
def test_a_report_never_writes_its_inputs(demo, tmp_path, study):
    run = Path(shutil.copytree(demo / "grown", tmp_path / "grown"))
    if study is not None:
        (run / "study.db").write_bytes(study)
    (run / "graph.json").write_text("")  # one bad file: skipped with a warning
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.iterdir() if p.is_file()}
    with pytest.warns(UserWarning, match="graph.json: skipped"):
        write_report(run)
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.iterdir() if p.is_file()}
    assert {k for k in after if after[k] != before.get(k)} <= {"report.html", "plotly.min.js"}
    assert not list(run.glob("study.db-*"))  # no journal left beside the storage either


def test_reports_under_a_runs_folder_share_one_plotly_js(tmp_path):
    runs = tmp_path / "runs"
    study = runs / "study"
    trial = study / "trials" / "3"
    stage = runs / "search" / "stages" / "stage_0"
    for run in (trial, stage, runs / "search"):
        run.mkdir(parents=True, exist_ok=True)
        (run / ".lock").touch()
        (run / "config.json").write_text("{}")
    (study / "study.json").write_text("{}")
    loose = tmp_path / "elsewhere"
    loose.mkdir()
    (loose / ".lock").touch()  # another program's lock file: not a run
    assert {plotly_home(d) for d in (study, trial, stage, runs / "search")} == {runs.resolve()}
    assert plotly_home(loose) == loose.resolve() and plotly_home(runs) == runs.resolve()


def test_a_standalone_report_carries_plotly_inside(demo, tmp_path):
    out = write_report(demo / "plain", tmp_path / "one.html", standalone=True)
    page = out.read_text()
    assert len(page) > 1_000_000 and "<script src=" not in page
    assert not (tmp_path / "plotly.min.js").exists()
