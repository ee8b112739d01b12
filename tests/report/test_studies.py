"""Architecture studies drawn from hand-built Optuna storages: the figures hold exactly the
trials' numbers, pruned trials are drawn as such and the Pareto (or best) trials are marked."""

import json
import re
import shutil
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
from plotly.colors import get_colorscale, hex_to_rgb, unlabel_rgb

from grownet.report import build_sections, load_evidence, write_report
from grownet.report.comparison import comparison_content
from grownet.report.studies import NOT_SAMPLED, parallel_coordinates

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"lr": FloatDistribution(0.01, 1.0, log=True), "blocks": IntDistribution(0, 8)}


def attrs(n: int, depth: int, params: int, accuracy: float | None, status: str) -> dict:
    return {
        "run_dir": f"trials/{n}", "depth": depth, "params": params, "flops": 20 * params,
        "widths": {"conv1": 8 * depth, "fc": 10}, "accuracy": accuracy, "status": status,
        "train_time_s": 1.5 * n, "ms_per_iter": None,
    }  # fmt: skip


def add(study, n, depth, params, accuracy, *, state=TrialState.COMPLETE, values=None,
        intermediate=None, status="converged", split=None):  # fmt: skip
    """``split``: the validation protocol's attributes ({"split": ..., "test_accuracy": ...})."""
    study.add_trial(
        create_trial(
            params={"lr": 0.01 * (n + 1), "blocks": depth - 2},
            distributions=SPACE,
            values=values if state == TrialState.COMPLETE else None,
            state=state,
            user_attrs=attrs(n, depth, params, accuracy, status) | (split or {}),
            intermediate_values=intermediate or {},
        )
    )


def new_study(db: Path, name: str, directions: list[str], metrics: list[str]):
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{db}", directions=directions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(metrics)
    return study


# (trial, depth, params, accuracy): 0 and 1 are the Pareto front of (max accuracy, min params);
# 2 is beaten by 0 on both, 3 by 1 on params at the same accuracy.
PARETO_TRIALS = [(0, 3, 1000, 0.90), (1, 5, 5000, 0.95), (2, 4, 2000, 0.85), (3, 6, 8000, 0.95)]


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    """``runs/arch/``: study.db with a two-objective, a one-objective and a one-trial study."""
    root = tmp_path_factory.mktemp("study") / "arch"
    root.mkdir()
    db = root / "study.db"
    arch = new_study(db, "arch", ["maximize", "minimize"], ["accuracy", "params"])
    for n, depth, params, acc in PARETO_TRIALS:
        add(arch, n, depth, params, acc, values=[acc, params])
    add(arch, 4, 7, 20000, None, state=TrialState.PRUNED,
        intermediate={100: 0.5, 200: 0.6}, status="pruned")  # fmt: skip
    arch.add_trial(create_trial(state=TrialState.FAIL))
    arch.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"interrupted": True}))
    arch.add_trial(create_trial(state=TrialState.RUNNING))

    solo = new_study(db, "solo", ["maximize"], ["accuracy"])
    for n, depth, params, acc in [(0, 2, 500, 0.80), (1, 3, 900, 0.91), (2, 4, 1500, 0.88)]:
        add(solo, n, depth, params, acc, values=[acc], intermediate={50: acc - 0.1, 100: acc})
    add(solo, 3, 6, 4000, None, state=TrialState.PRUNED, intermediate={50: 0.3},
        status="pruned")  # fmt: skip

    lone = new_study(db, "lone", ["minimize"], ["params"])
    add(lone, 0, 3, 777, 0.7, values=[777])
    (root / "trials" / "0").mkdir(parents=True)  # a trial's run directory: not a run of its own
    return root


@pytest.fixture(scope="module")
def studies(study_dir):
    sections = build_sections(load_evidence([study_dir]))
    section = next(s for s in sections if s.id == "studies")
    return section, section.figures


def by_name(fig) -> dict:
    return {t.name: t for t in fig.data}


def numbers(trace) -> list[int]:
    return [row[0] for row in trace.customdata]


def test_accuracy_vs_depth_and_params_hold_every_trial(studies):
    _, figs = studies
    depth = by_name(figs["study-0-arch-accuracy-depth"])
    assert numbers(depth["complete"]) == [0, 1, 2, 3]
    assert list(depth["complete"].x) == [3, 5, 4, 6]
    assert list(depth["complete"].y) == [0.90, 0.95, 0.85, 0.95]
    params = figs["study-0-arch-accuracy-params"]
    assert params.layout.xaxis.type == "log"
    assert list(by_name(params)["complete"].x) == [1000, 5000, 2000, 8000]
    row = depth["complete"].customdata[1]  # trial 1: what the hover shows
    assert (row[0], row[1], row[2], row[3], row[5]) == (1, 5, 5000, 100000, "trials/1")
    assert row[4] == "conv1 40, fc 10"


def test_pruned_trials_are_drawn_at_their_last_report(studies):
    _, figs = studies
    pruned = by_name(figs["study-0-arch-accuracy-depth"])["pruned (last reported)"]
    assert numbers(pruned) == [4] and list(pruned.x) == [7] and list(pruned.y) == [0.6]
    assert pruned.marker.symbol == "x"
    assert pruned.customdata[0][7] == "step 200 (pruned)"
    solo = by_name(figs["study-0-solo-accuracy-params"])["pruned (last reported)"]
    assert list(solo.x) == [4000] and list(solo.y) == [0.3]


def test_the_pareto_front_and_the_best_trial_are_marked(studies):
    _, figs = studies
    for kind in ("accuracy-depth", "accuracy-params"):
        marked = by_name(figs[f"study-0-arch-{kind}"])["Pareto-optimal"]
        assert sorted(numbers(marked)) == [0, 1]
        best = by_name(figs[f"study-0-solo-{kind}"])["best trial"]
        assert numbers(best) == [1] and list(best.y) == [0.91]


def test_the_pareto_table_lists_exactly_the_front(studies):
    section, _ = studies
    tables = [c for c in section.content if isinstance(c, str) and "<table" in c]
    arch = next(t for t in tables if "Pareto set (2 trials)" in t)
    rows = re.findall(r"<tr><td>(\d+)</td>", arch)
    assert rows == ["1", "0"]  # best accuracy first
    assert "<td>trials/1</td>" in arch and "<td>5,000</td>" in arch and "conv1 40, fc 10" in arch
    assert "<td>trials/2</td>" not in arch and "<td>trials/3</td>" not in arch
    solo = next(t for t in tables if "Best trial" in t and "trials/1" in t and "91.00 %" in t)
    assert re.findall(r"<tr><td>(\d+)</td>", solo) == ["1"]


def test_optuna_figures_and_the_one_trial_rule(studies):
    section, figs = studies
    keys = {k.removeprefix("study-0-") for k in figs}
    assert {"arch-pareto", "arch-history-0", "arch-history-1", "arch-importance",
            "arch-intermediate", "arch-parallel"} <= keys  # fmt: skip
    assert {"solo-history", "solo-parallel", "solo-importance", "solo-intermediate"} <= {
        k.removeprefix("study-0-") for k in figs
    }
    lone = {k.removeprefix("study-0-") for k in figs if k.startswith("study-0-lone")}
    # One trial: its table only; a figure of one point says no more than the row.
    assert lone == set()
    tables = [c for c in section.content if isinstance(c, str) and "<table" in c]
    assert any("<td>777</td>" in t and "70.00 %" in t and "Best trial" in t for t in tables)
    curves = figs["study-0-solo-intermediate"]
    assert {t.name for t in curves.data} == {"Trial0", "Trial1", "Trial2", "Trial3"}
    heading = next(c for c in section.content if isinstance(c, str) and "study arch" in c)
    assert "4 complete, 1 pruned, 1 interrupted (continued), 1 failed, 1 running" in heading


def test_a_study_report_leaves_the_storage_as_it_was(study_dir, tmp_path):
    db = study_dir / "study.db"
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    page = write_report(study_dir, out=tmp_path / "study.html").read_text()
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before
    assert not list(study_dir.glob("study.db-*"))
    assert "Pareto set (2 trials)" in page and "accuracy vs depth" in page


def test_a_study_without_finished_trials_says_so(tmp_path):
    db = tmp_path / "study.db"
    study = new_study(db, "early", ["maximize"], ["accuracy"])
    study.add_trial(create_trial(state=TrialState.RUNNING))
    section = next(s for s in build_sections(load_evidence([tmp_path])) if s.id == "studies")
    assert not section.figures
    assert any("No finished trial yet" in c for c in section.content)


def test_a_grid_over_one_parameter_draws_no_importances(tmp_path):
    """A recipe's study: its only parameter holds all the importance; drawn, it only warns."""
    from optuna.distributions import CategoricalDistribution

    from grownet.report.studies import study_figures

    db = tmp_path / "study.db"
    study = new_study(db, "recipe", ["maximize"], ["accuracy"])
    cases = CategoricalDistribution(["plain", "dropin", "long"])
    for i, case in enumerate(cases.choices):
        study.add_trial(create_trial(params={"case": case}, distributions={"case": cases},
                                     values=[0.5 + 0.1 * i]))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kinds = {k.removeprefix("recipe-") for k in study_figures(db, label="r")}
    assert {"history", "parallel"} <= kinds and "importance" not in kinds


@pytest.mark.parametrize(("split", "axis", "tested"), [
    (None, "test accuracy", None),  # a study from before the protocol: accuracies on test
    ({"split": "test", "test_accuracy": None}, "test accuracy", None),  # no validation held out
    ({"split": "val", "test_accuracy": 0.5}, "validation accuracy", "50.00 %"),
])  # fmt: skip
def test_trials_accuracy_names_its_split_and_the_test_read_once_stands_beside(
    tmp_path, split, axis, tested
):
    db = tmp_path / "study.db"
    study = new_study(db, "held", ["maximize", "minimize"], ["accuracy", "params"])
    for n, depth, params, acc in PARETO_TRIALS:
        add(study, n, depth, params, acc, values=[acc, params], intermediate={10: acc},
            split=split)  # fmt: skip
    section = next(s for s in build_sections(load_evidence([tmp_path])) if s.id == "studies")
    figs = section.figures
    depth = figs["study-0-held-accuracy-depth"]
    assert depth.layout.yaxis.title.text == axis and axis in depth.layout.title.text
    complete = by_name(depth)["complete"]
    row = complete.customdata[0]  # the hover's split word, and the test accuracy where read
    assert f"{row[8]} accuracy" == axis
    assert row[9] == ("" if tested is None else "<br>test accuracy 0.5000 (read once)")
    assert f"({axis} at each evaluation)" in figs["study-0-held-intermediate"].layout.title.text
    table = next(c for c in section.content if isinstance(c, str) and "Pareto set" in c)
    assert f"<th>{axis}</th>" in table
    assert ("<th>test accuracy (read once)</th>" in table) == (tested is not None)
    assert tested is None or f"<td>{tested}</td>" in table


@pytest.mark.parametrize(("basis", "axis"), [
    (None, "test accuracy"),  # a comparison from before the protocol: on test
    ("test", "test accuracy (read once)"),
    ("selected", "accuracy that chose (no test after)"),
])  # fmt: skip
def test_a_comparison_names_the_accuracy_it_compares(tmp_path, basis, axis):
    search = {"run": "runs/s", "seed": 0, "accuracy": 0.91, "params": 8, "depth": 3,
              "widths": {}, "dominated": False, "accuracy_gap": None, "params_ratio": None,
              "train_time_s": 1.0}  # fmt: skip
    data = {"front": [{"accuracy": 0.9, "params": 10}], "trials": 3, "searches": [search]}
    (tmp_path / "c.json").write_text(json.dumps(data | ({"basis": basis} if basis else {})))
    _, table, (_, fig) = comparison_content(tmp_path / "c.json", label="x")
    assert fig.layout.yaxis.title.text == axis and f"<th>{axis}</th>" in table


def luminance(colour: str) -> float:
    """Relative luminance (WCAG): 1 is white."""
    rgb = unlabel_rgb(colour) if colour.startswith("rgb") else hex_to_rgb(colour)
    linear = [(c / 255 / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4) for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def scale_colours(scale) -> list[str]:
    return [c for _, c in (get_colorscale(scale) if isinstance(scale, str) else scale)]


def test_every_colour_of_a_trial_is_visible_on_white_and_the_front_stands_out(studies):
    _, figs = studies
    pareto = figs["study-0-arch-pareto"]
    for trace in pareto.data:
        colours = scale_colours(trace.marker.colorscale) if trace.marker.colorscale else []
        # contrast with white at least 1.8 : 1 (luminance <= 0.53); optuna's Blues start at 0.96
        assert colours and max(map(luminance, colours)) <= 0.53, trace.name
    front = by_name(pareto)["Pareto-optimal"]
    assert sorted(front.x) == [0.90, 0.95] or sorted(front.y) == [0.90, 0.95]
    assert front.marker.line.width >= 1.5 and front.marker.symbol == "diamond"
    line = figs["study-0-arch-parallel"].data[0].line
    assert max(map(luminance, scale_colours(line.colorscale))) <= 0.53


def test_parallel_coordinates_draw_every_parameter_and_objective(studies):
    _, figs = studies
    arch = figs["study-0-arch-parallel"]
    (lines,) = arch.data
    assert lines.type == "parcoords"
    dims = {d.label: d for d in lines.dimensions}
    assert list(dims) == ["blocks", "lr", "accuracy", "params"]
    assert list(dims["accuracy"].values) == [acc for *_, acc in PARETO_TRIALS]
    assert list(dims["params"].values) == [params for _, _, params, _ in PARETO_TRIALS]
    assert list(dims["blocks"].values) == [1, 3, 2, 4]  # depth - 2
    assert list(dims["blocks"].tickvals) == [1, 2, 3, 4]  # whole numbers only
    lr = dims["lr"]  # log-sampled: drawn in decades
    assert list(lr.ticktext) == ["0.01", "0.1"] and list(lr.tickvals) == [-2, -1]
    assert list(lines.line.color) == list(dims["accuracy"].values)
    assert "solo-parallel" in {k.removeprefix("study-0-") for k in figs}


def test_parallel_coordinates_name_categories_and_unsampled_parameters():
    from optuna.distributions import CategoricalDistribution

    cases = CategoricalDistribution(["plain", "dropin", "long"])
    width = IntDistribution(8, 64)
    trials = [
        create_trial(params={"case": "long", "w2": 16}, distributions={"case": cases, "w2": width},
                     values=[0.9]),
        create_trial(params={"case": "plain"}, distributions={"case": cases}, values=[0.8]),
    ]  # fmt: skip
    case, w2, objective = parallel_coordinates(trials, ["accuracy"]).data[0].dimensions
    assert list(case.ticktext) == ["plain", "dropin", "long"] and list(case.values) == [2, 0]
    assert list(w2.ticktext) == ["16", NOT_SAMPLED] and list(w2.values) == [0, 1]
    assert list(objective.values) == [0.9, 0.8]


@pytest.mark.parametrize("finished", [True, False])
def test_a_study_row_says_what_the_study_is(study_dir, tmp_path, finished):
    study = Path(shutil.copytree(study_dir, tmp_path / "arch"))
    if finished:  # what grownet study writes at its end (grownet.study.summary)
        summary = {
            "trials": {"complete": 4, "pruned": 1},
            "pareto": True,
            "best": [{"number": 0, "accuracy": 0.9}, {"number": 1, "accuracy": 0.95}],
        }
        (study / "study_summary.json").write_text(json.dumps(summary))
    runs = next(s for s in build_sections(load_evidence([study])) if s.id == "runs")
    row = runs.content[0]
    assert "no metrics yet" not in row
    said = "study: 4 complete, 1 pruned; Pareto set of 2 trials" if finished else "study, not"
    assert said in row
