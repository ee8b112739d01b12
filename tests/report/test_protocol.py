"""A search under the validation protocol and one from before it (conftest's ``searches``):
every label names the split its numbers are on, stage intervals count the decision split's
samples, the knee's bootstrap interval is drawn, and the reported networks are tabled."""

import json
import re

import pytest
from scipy.stats import beta

from grownet.report import build_sections, load_evidence
from grownet.report.load import SchemaError, check_stage, check_sweeps

KINDS = [("new", "validation"), ("old", "test")]
N_VAL, N_TEST = 500, 1000  # the searches' decision and test split sizes (conftest)
STAGE = {"stage": 0, "depth": 3, "params": 5000, "flops": 80000, "test_accuracy": 0.8,
         "wall_time_s": 10.0}  # fmt: skip
POINTS = [{"ratio": 1, "error": 0}]
CHECK = {"full_accuracy": 0.9, "reduced_accuracy": 0.89, "passed": True}
INTERVAL = {"low_ratio": 0.25, "high_ratio": 0.5, "level": 0.9, "low_channels": {"c": 4}}


def sections_of(path) -> dict:
    return {s.id: s for s in build_sections(load_evidence([path]))}


def figures_of(path) -> dict:
    return {k: f for s in sections_of(path).values() for k, f in s.figures.items()}


def named(fig, name: str):
    (trace,) = [t for t in fig.data if t.name == name]
    return trace


@pytest.mark.parametrize(("kind", "split"), KINDS)
def test_every_axis_and_hover_names_the_split(searches, kind, split):
    figs = figures_of(searches[kind])
    other = {"validation": "test", "test": "validation"}[split]
    for key, what in [("depth", "accuracy"), ("error-time", "error"), ("sweep-0-0", "error"),
                      ("sweep-0-1", "error")]:  # fmt: skip
        fig = figs[key]
        assert fig.layout.yaxis.title.text == f"{split} {what}", key
        hovers = " ".join(t.hovertemplate or "" for t in fig.data)
        assert f"{split} {what}" in hovers and f"{other} {what}" not in hovers, key
    assert named(figs["sweep-0-0"], f"{split} error").y == (0.11, 0.10, 0.10)
    assert f"s {split}" in {t.name for t in figs["accuracy"].data}  # the learning curve
    assert figs["accuracy"].layout.title.text == f"Accuracy ({split} solid, train dotted)"


@pytest.mark.parametrize(("kind", "n", "said"), [
    ("new", N_VAL, "over 500 validation samples (search_summary.json n_val)"),
    ("old", N_TEST, "over 1,000 test samples (search_summary.json n_test)"),
])  # fmt: skip
def test_stage_intervals_count_the_decision_splits_samples(searches, kind, n, said):
    stages = named(figures_of(searches[kind])["depth"], "s")
    assert said in stages.hovertemplate
    for acc, down in zip(stages.y, stages.error_y.arrayminus, strict=True):
        k = round(acc * n)
        assert acc - down == pytest.approx(beta.ppf(0.025, k, n - k + 1))


def test_a_search_still_growing_counts_its_stages_n(searches, copy_of):
    run = copy_of(searches["new"])
    (run / "search_summary.json").unlink()
    stages = named(figures_of(run)["depth"], "s")
    assert "over 500 validation samples (stages.jsonl n)" in stages.hovertemplate


@pytest.mark.parametrize(("sweep", "span", "ends"), [
    (0, [0.25, 0.5], "ratio 0.25 (smaller network) to 0.5: 4 to 8 channels"),
    (1, [0.25, 0.5], "ratio 0.5 (smaller network) to 0.25: 3 to 4 weighted layers"),
])  # fmt: skip
def test_the_knees_bootstrap_interval_is_a_band(searches, sweep, span, ends):
    fig = figures_of(searches["new"])[f"sweep-0-{sweep}"]
    (band,) = [t for t in fig.data if t.name.startswith("90 % interval")]
    assert band.fill == "toself" and [min(band.x), max(band.x)] == span
    assert [min(band.y), max(band.y)] == [0.10, 0.11]  # the curve's whole height
    for text in (band.hovertemplate, band.text):
        assert "the knee's 90 % bootstrap interval over 500 validation samples" in text
        assert ends in text
    close = "check: a close call: 1.0 sample(s) above the threshold"
    assert (close in band.hovertemplate) == (sweep == 0)  # only the width sweep was checked
    old = figures_of(searches["old"])[f"sweep-0-{sweep}"]
    assert not [t for t in old.data if t.name.startswith("90 %")]  # no interval recorded


def rows_of(table: str) -> list[list[str]]:
    """The body's cells, row by row."""
    body = table.split("<tbody>")[1]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)]


def search_section(path) -> str:
    return "".join(c for c in sections_of(path)["search"].content if isinstance(c, str))


def test_the_reported_networks_table_names_each_numbers_split(searches):
    page = search_section(searches["new"])
    assert "Decisions read the <b>validation</b> split (500 samples, held out of the training " \
           "set, stratified, seed 0); the <b>test</b> split (1,000 samples)" in page  # fmt: skip
    assert "<th>validation accuracy (500 samples)</th>" in page
    assert "<th>test accuracy, read once (1,000 samples)</th>" in page
    networks = next(t for t in page.split("<div class='wide'>") if "recommended" in t)
    assert [row[0] + " " + " ".join(row[3:6]) for row in rows_of(networks)] == [
        "recommended 89.00 % 87.00 % s/verify/width",
        "full (the chosen depth) 90.00 % 88.00 % s/verify/full-stage1",
        "best seen (chosen on validation) 90.50 % not read s/stages/stage_1",
        "final, inherited weights (chosen) 91.00 % 89.00 % s/final/inherited",
        "final, scratch weights 90.00 % 89.50 % s/final/scratch",
    ]
    assert '<td class="good">final, inherited weights (chosen)</td>' in networks
    assert "<code>s/model</code>" in page and "600 iterations from inherited weights" in page
    assert [run.label for run in load_evidence([searches["new"]]).runs] == ["s"]  # not model/


def test_the_intervals_stand_beside_the_recommendation(searches):
    page = search_section(searches["new"])
    intervals = next(t for t in page.split("<div class='wide'>") if "90 % interval" in t)
    assert rows_of(intervals) == [["depth", "4 weighted layers", "3 to 4 layers"],
                                  ["width of conv1", "8 channels", "4 to 8 channels"]]  # fmt: skip
    assert "central 90 % of the sweeps' estimates over 400 bootstrap replicates of the 500 " \
           "validation samples" in page  # fmt: skip
    assert "the check of the width sweep of conv1: a close call: 1.0 sample(s) above" in page


def test_an_attention_layers_interval_counts_heads(searches, copy_of):
    path = copy_of(searches["new"])
    summary = json.loads((path / "search_summary.json").read_text())
    summary["recommended"]["heads"] = {"attn1": 2}
    summary["width_interval"]["attn1"] = [1, 4]
    (path / "search_summary.json").write_text(json.dumps(summary))
    intervals = next(t for t in search_section(path).split("<div class='wide'>")
                     if "90 % interval" in t)  # fmt: skip
    assert rows_of(intervals)[-1] == ["heads of attn1", "2 heads", "1 to 4 heads"]


def test_an_old_search_says_it_decided_on_test(searches):
    page = search_section(searches["old"])
    assert "before the validation protocol" in page and "read once" not in page
    assert "<th>test accuracy (1,000 samples)</th>" in page
    assert "interval" not in page and "search s (old): depth pays" in page


@pytest.mark.parametrize(("kind", "on"), [("new", "test"), ("old", "test"), ("held", "validation")])
def test_runs_name_the_split_of_their_accuracies(searches, demo, copy_of, kind, on):
    """A finished search's result.json holds its test answer, read once; an old search's and
    any run's accuracies are on the split it evaluated (a held-out validation split here)."""
    run = searches.get(kind)
    if kind == "held":
        run = copy_of(demo / "plain")
        data = json.loads((run / "dataset.json").read_text())
        data["sizes"]["val"] = 100
        (run / "dataset.json").write_text(json.dumps(data))
        assert "plain validation" in {t.name for t in figures_of(run)["accuracy"].data}
    runs = sections_of(run)["runs"].content[0]
    assert "<th>acc. on</th>" in runs and f"<td>{on}</td>" in runs


@pytest.mark.parametrize(("check", "record"), [
    (check_stage, STAGE),
    (check_stage, STAGE | {"split": "val", "n": N_VAL}),
    (check_sweeps, {"sweeps": [{"kind": "width", "layer": None, "points": POINTS,
                                "verification": CHECK}]}),
    (check_sweeps, {"sweeps": [{"kind": "width", "layer": None, "points": POINTS,
                                "verification": CHECK | {"split": "val", "n": N_VAL,
                                                         "margin_samples": 1.0},
                                "interval": INTERVAL}]}),
])  # fmt: skip
def test_schemas_take_records_from_before_and_under_the_protocol(check, record):
    assert check(record)


@pytest.mark.parametrize(("check", "record", "match"), [
    (check_stage, STAGE | {"split": "train"}, "'split' must be one of"),
    (check_stage, STAGE | {"n": 0.5}, "'n' must be an integer"),
    (check_sweeps, {"sweeps": [{"kind": "width", "layer": None, "points": POINTS,
                                "interval": INTERVAL | {"low_ratio": "0.25"}}]},
     "sweep 0 interval: 'low_ratio' must be a number"),
])  # fmt: skip
def test_schema_mistakes_in_the_protocols_fields_are_named(check, record, match):
    with pytest.raises(SchemaError, match=match):
        check(record)


def test_a_stopped_point_is_drawn_as_stopped_and_the_cost_is_stated(searches):
    sections = sections_of(searches["new"])
    stopped = named(figures_of(searches["new"])["sweep-0-1"], "stopped early (not trained)")
    assert list(stopped.x) == [0.9]  # off the error line, which holds only measured points
    text = " ".join(c for s in sections.values() for c in s.content if isinstance(c, str))
    assert "Cost: 1.5 TFLOP of training compute" in text and "4,200 iterations over 7 runs" in text
