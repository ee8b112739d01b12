"""A growth search's report, from a search directory laid by hand: error on one search clock,
each stage's binomial interval and the stage kept, the sweeps' full-network and knee lines."""

import json
import shutil
from pathlib import Path

import pytest
from scipy.stats import beta

from grownet.report import build_sections, load_evidence, write_report

STAGES = [
    {"stage": 0, "depth": 3, "params": 5000, "flops": 80000, "test_accuracy": 0.80,
     "wall_time_s": 10.0, "stage_time_s": 10.0, "decision": "the base network"},
    {"stage": 1, "depth": 4, "params": 7000, "flops": 110000, "test_accuracy": 0.90,
     "wall_time_s": 25.0, "stage_time_s": 15.0,
     "decision": "stage 1 (depth 4) gained +10.00 points over stage 0: depth pays"},
    {"stage": 2, "depth": 5, "params": 9000, "flops": 140000, "test_accuracy": 0.905,
     "wall_time_s": 45.0, "stage_time_s": 20.0,
     "decision": "stage 2 (depth 5) gained +0.50 points over stage 1: depth does not pay; "
                 "keep stage 1"},
]  # fmt: skip
# Each stage's own clock restarts at 0: (stage, iteration, seconds into the stage, accuracy).
TESTS = [(0, 10, 5.0, 0.6), (0, 20, 10.0, 0.8), (1, 30, 7.0, 0.85), (1, 40, 14.0, 0.9),
         (2, 50, 10.0, 0.9), (2, 60, 19.0, 0.905)]  # fmt: skip
CLOCK = {0: [5.0, 10.0], 1: [17.0, 24.0], 2: [35.0, 44.0]}  # offsets 0, 10 and 25 s

POINTS = [{"ratio": r, "error": e} for r, e in [(0.25, 0.10), (0.5, 0.11), (0.75, 0.30)]]
CHECK = {"full_accuracy": 0.9, "reduced_accuracy": 0.895, "passed": True}
SWEEPS = {
    "sweeps": [
        {"kind": "dropin", "layer": None, "points": POINTS, "knee": {"ratio": 0.5, "error": 0.11},
         "estimate": {"ratio": 0.5, "size": 3, "full_size": 5}, "verification": CHECK},
        {"kind": "width", "layer": None, "points": POINTS, "knee": None,
         "estimate": {"ratio": 0.25, "size": 12, "full_size": 48},
         "verification": {**CHECK, "full_accuracy": 0.88}},
        {"kind": "width", "layer": "conv1", "points": POINTS, "knee": None, "estimate": None,
         "verification": None, "plateau": 0.2, "max_rise": 0.05},
    ]
}  # fmt: skip


@pytest.fixture(scope="module")
def search(tmp_path_factory) -> Path:
    """``runs/s/`` as ``grownet search`` lays it out, as far as the report reads it."""
    run = tmp_path_factory.mktemp("search") / "s"
    run.mkdir()
    lines = [{"kind": "test", "iteration": i, "loss": 1 - a, "accuracy": a, "wall_time_s": t,
              "stage": s} for s, i, t, a in TESTS]  # fmt: skip
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (run / "stages.jsonl").write_text("".join(json.dumps(s) + "\n" for s in STAGES))
    (run / "sweeps.json").write_text(json.dumps(SWEEPS))
    (run / "search.json").write_text(
        json.dumps({"width": {"max_rise": 0.01}, "depth": {"max_rise": 0.02}})
    )
    summary = {"chosen_stage": 1, "growth_decision": STAGES[2]["decision"], "n_test": 1000,
               "full": {"depth": 4}}  # fmt: skip
    (run / "search_summary.json").write_text(json.dumps(summary))
    (run / "summary.txt").write_text("search s: depth pays\n")
    return run


def figures_of(path: Path) -> dict:
    return {k: f for s in build_sections(load_evidence([path])) for k, f in s.figures.items()}


def by_name(fig) -> dict:
    return {t.name: t for t in fig.data}


def test_stages_run_end_to_end_on_one_search_clock(search):
    traces = by_name(figures_of(search)["error-time"])
    assert sorted(traces) == ["s stage 0", "s stage 1", "s stage 2"]
    for stage, times in CLOCK.items():
        t = traces[f"s stage {stage}"]
        assert list(t.x) == times
        assert list(t.y) == pytest.approx([1 - a for s, _, _, a in TESTS if s == stage])
    ends = [max(traces[f"s stage {k}"].x) for k in range(3)]
    starts = [min(traces[f"s stage {k}"].x) for k in range(3)]
    assert all(end <= start for end, start in zip(ends, starts[1:], strict=False))  # no way back
    assert len({t.line.color for t in traces.values()}) == 1  # one run, one colour


def test_a_stage_still_training_starts_where_the_last_recorded_one_ended(search, tmp_path):
    run = Path(shutil.copytree(search, tmp_path / "s"))
    live = {"kind": "test", "iteration": 70, "accuracy": 0.91, "wall_time_s": 3.0, "stage": 3}
    with (run / "metrics.jsonl").open("a") as f:
        f.write(json.dumps(live) + "\n")  # no stages.jsonl record for stage 3 yet
    traces = by_name(figures_of(run)["error-time"])
    assert list(traces["s stage 3"].x) == [45.0 + 3.0]


def test_each_stage_has_its_binomial_interval_and_the_kept_stage_is_starred(search):
    fig = figures_of(search)["depth"]
    stages = by_name(fig)["s"]
    for acc, up, down in zip(stages.y, stages.error_y.array, stages.error_y.arrayminus,
                             strict=True):  # fmt: skip
        k = round(acc * 1000)
        assert acc - down == pytest.approx(beta.ppf(0.025, k, 1000 - k + 1))
        assert acc + up == pytest.approx(beta.ppf(0.975, k + 1, 1000 - k))
    assert "over 1,000 test samples (search_summary.json n_test)" in stages.hovertemplate
    kept = by_name(fig)["s: kept stage 1"]
    assert list(kept.x) == [4] and list(kept.y) == [0.90] and kept.marker.symbol == "star"
    assert "keep stage 1" in kept.hovertemplate


def test_without_a_summary_the_decision_names_the_kept_stage(search, tmp_path):
    run = Path(shutil.copytree(search, tmp_path / "s"))
    (run / "search_summary.json").unlink()
    fig = figures_of(run)["depth"]
    assert list(by_name(fig)["s: kept stage 1"].x) == [4]  # from "... keep stage 1"
    assert by_name(fig)["s"].error_y.array is None  # no sample count known: no bars
    (run / "dataset.json").write_text(json.dumps({"sizes": {"train": 9, "val": 0, "test": 360}}))
    stages = by_name(figures_of(run)["depth"])["s"]
    assert "over 360 test samples (dataset.json sizes)" in stages.hovertemplate
    assert stages.error_y.array is not None


def hline(fig, prefix: str) -> float:
    (t,) = [t for t in fig.data if t.name.startswith(prefix)]
    assert t.y[0] == t.y[1] and list(t.x) == [0.25, 0.75]  # across the whole sweep
    return t.y[0]


def test_sweeps_draw_the_full_network_and_the_knee_threshold(search):
    figs = figures_of(search)
    dropin, width, stored = (figs[f"sweep-0-{i}"] for i in range(3))
    # DropIn: the knee was read against the deepest stage (stage 2, error 0.095) + [depth]'s 0.02.
    assert hline(dropin, "full network") == pytest.approx(0.1)
    assert hline(dropin, "plateau + max_rise") == pytest.approx(0.095 + 0.02)
    assert "stage 2's error" in next(t for t in dropin.data if t.name.startswith("plateau"))[
        "hovertemplate"]  # fmt: skip
    # Width after a depth check that passed at depth 3 < the chosen stage's 4: its plateau is
    # that shallower network's error (1 - 0.895), its max_rise [width]'s 0.01.
    assert hline(width, "full network") == pytest.approx(0.12)
    assert hline(width, "plateau + max_rise") == pytest.approx(0.105 + 0.01)
    # A record that stores its plateau and max_rise is drawn from them.
    assert hline(stored, "plateau + max_rise") == pytest.approx(0.25)
    assert not [t for t in stored.data if t.name.startswith("full network")]  # no check


def test_the_search_page_is_drawn(search, tmp_path):
    page = write_report(search, out=tmp_path / "search.html").read_text()
    assert "s: kept stage 1" in page and "plateau + max_rise" in page and "search s: depth" in page


def test_a_plain_run_is_one_line_on_its_own_clock(demo):
    fig = figures_of(demo / "plain")["error-time"]
    assert [t.name for t in fig.data] == ["plain"]
    assert "stages end to end" not in fig.layout.xaxis.title.text


def test_width_growth_draws_accuracy_vs_flops_along_the_grown_from_links(search, tmp_path):
    run = tmp_path / "both"
    shutil.copytree(search, run)
    kinds = [("base", 0), ("depth", 0), ("width", 1)]
    stages = [{**s, "kind": k, "parent": p} for s, (k, p) in zip(STAGES, kinds, strict=True)]
    (run / "stages.jsonl").write_text("".join(json.dumps(s) + "\n" for s in stages))
    lines, markers = figures_of(run)["flops"].data
    assert list(lines.x) == [80000, 110000, None, 110000, 140000, None]  # 0->1, 1->2
    assert list(markers.text) == ["s0 base", "s1 depth", "s2 width"]
    assert list(markers.marker.symbol) == ["circle", "triangle-up", "diamond"]
    assert "flops" not in figures_of(search)
