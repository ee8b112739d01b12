"""Growth versus brute force: the dominance arithmetic on a hand-made front."""

import json

import optuna
import pytest

from grownet.errors import BadValueError
from grownet.report.comparison import comparison_content
from grownet.study.compare import (
    Point,
    compare,
    dominates,
    format_comparison,
    front_moved,
    pareto,
    place,
)

POINTS = [Point(0.90, 500), Point(0.95, 1_000), Point(0.95, 2_000), Point(0.99, 5_000),
          Point(0.97, 6_000)]  # fmt: skip


def test_the_front_keeps_only_undominated_points():
    assert pareto(POINTS) == [Point(0.90, 500), Point(0.95, 1_000), Point(0.99, 5_000)]
    assert dominates(Point(0.95, 1_000), Point(0.95, 2_000))  # as accurate, smaller
    assert not dominates(Point(0.95, 1_000), Point(0.95, 1_000))  # equal: neither


@pytest.mark.parametrize(
    ("rec", "dominated", "gap", "ratio"),
    [
        (Point(0.95, 1_500), True, 0.0, 1_000 / 1_500),  # the front is as good, smaller
        (Point(0.95, 1_000), False, 0.0, 1.0),  # on the front
        (Point(0.93, 6_000), True, 0.06, 1_000 / 6_000),  # 6 points worse at its size
        (Point(0.995, 5_000), False, -0.005, None),  # beyond the front: none as accurate
        (Point(0.80, 100), False, None, 5.0),  # smaller than every trial
    ],
)
def test_a_recommendation_is_placed_on_the_front(rec, dominated, gap, ratio):
    placed = place(rec, POINTS)
    assert placed["dominated"] is dominated
    assert placed["accuracy_gap"] == (None if gap is None else pytest.approx(gap))
    assert placed["params_ratio"] == (None if ratio is None else pytest.approx(ratio))


def search_run(path, accuracy, params, seed):
    path.mkdir(parents=True)
    summary = {"recommended": {"accuracy": accuracy, "params": params, "depth": 3,
                               "widths": {"conv1_1": 8}}, "train_time_s": 20.0,
               "compute": {"train_flops": 3_000, "final_flops": 1_000}}  # fmt: skip
    (path / "search_summary.json").write_text(json.dumps(summary))
    (path / "config.json").write_text(json.dumps({"seed": seed}))
    return path


def test_compare_reads_a_study_and_searches_and_the_report_draws_it(tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"], study_name="s")
    for p in POINTS:
        study.add_trial(optuna.trial.create_trial(
            values=[p.accuracy, p.params], user_attrs={"accuracy": p.accuracy,
            "params": p.params, "train_time_s": 3.0, "train_flops": 2_000}))  # fmt: skip
    runs = [search_run(tmp_path / f"s{i}", 0.95, 1_500 - 500 * i, i) for i in range(2)]
    result = compare(study, runs)
    assert (result["trials"], result["study_train_time_s"], len(result["front"])) == (5, 15.0, 3)
    assert [r["dominated"] for r in result["searches"]] == [True, False]
    assert [r["seed"] for r in result["searches"]] == [0, 1]
    # compute: the search's FLOPs over the study's (5 trials x 2,000), seconds beside them
    assert result["study_train_flops"] == 10_000
    ratios = [(r["compute_ratio"], r["decision_ratio"], r["time_ratio"])
              for r in result["searches"]]  # fmt: skip
    assert ratios == [(0.3, 0.2, 20 / 15)] * 2
    assert "compute x" in format_comparison(result) and "10 kFLOP" in format_comparison(result)
    (tmp_path / "comparison.json").write_text(json.dumps(result))
    heading, table, (_, fig) = comparison_content(tmp_path / "comparison.json", label="s")
    assert "growth versus brute force" in heading and "<td>yes</td>" in table
    assert "3 kFLOP" in table and "<td>0.30</td>" in table
    assert [list(t.x) for t in fig.data] == [[500, 1_000, 5_000], [1_500], [1_000]]
    with pytest.raises(BadValueError, match=r"no search_summary\.json"):
        compare(study, [tmp_path / "missing"])


@pytest.mark.parametrize(
    ("points", "moved"),
    [
        # the last quarter found nothing better at any size reached: settled
        ([Point(0.9, 100), Point(0.95, 200), Point(0.93, 300), Point(0.94, 200)], 0.0),
        # trial 4 beat the front at 200 params by 2 points
        ([Point(0.9, 100), Point(0.95, 200), Point(0.93, 300), Point(0.97, 200)], 0.02),
        # a smaller network extends the front: not a move at sizes already reached
        ([Point(0.9, 100), Point(0.95, 200), Point(0.93, 300), Point(0.5, 10)], 0.0),
    ],
)
def test_front_moved_says_whether_the_last_trials_moved_the_front(points, moved):
    assert front_moved(points) == pytest.approx(moved)
