"""The DropIn MNIST recipe end to end, shortened to 600 iterations and a 1,000-step DropIn."""

import json
import os
from pathlib import Path

import pytest

from grownet.cli import main
from grownet.reproduce import collect_results, format_table, load_recipe, run_recipe
from grownet.train.config import ConfigError

ROOT = Path(__file__).parents[1]
DATA = Path(os.environ.get("GROWNET_DATA", ROOT.parent / "shared" / "data"))
RECIPE = ROOT / "recipes" / "dropin_mnist_lenet.toml"


@pytest.mark.skipif(not (DATA / "MNIST" / "raw").is_dir(), reason="real MNIST not available")
def test_short_mnist_claim_plain_fails_dropin_converges(tmp_path):
    recipe = load_recipe(RECIPE)
    overrides = {
        "data_dir": str(DATA), "max_iter": 600, "test_interval": 600, "checkpoint_interval": 0,
        "model_options": {"dropin_length": 1000},
    }  # fmt: skip
    summary = run_recipe(recipe, cases=["lenet10", "lenet10-dropin-2500"], overrides=overrides,
                         runs_dir=str(tmp_path), echo=lambda line: None)  # fmt: skip
    rows = {r.case: r for r in summary["rows"]}
    plain, dropin = rows["lenet10"], rows["lenet10-dropin-2500"]
    assert plain.status == "did not converge" and plain.final_test_accuracy < 0.2
    assert dropin.status == "converged" and dropin.final_test_accuracy > 0.9
    assert plain.network == "LeNet(10)" and dropin.network == "LeNet(10)+DropIn"
    assert plain.verdict == dropin.verdict == "reproduced"
    ran = [r.case for r in collect_results(recipe, tmp_path) if r.iterations]
    assert ran == ["lenet10", "lenet10-dropin-2500"]
    table = format_table(summary["rows"])
    assert "LeNet(10)+DropIn" in table and "did not converge" in table


def test_summary_only_rebuilds_the_table(tmp_path, capsys):
    case = tmp_path / "dropin_mnist_lenet" / "lenet10"
    case.mkdir(parents=True)
    recipe = load_recipe(RECIPE)
    config = recipe.config(recipe.cases[0])
    (case / "config.json").write_text(json.dumps(config.to_dict()))
    result = {"status": "did not converge", "final_test_accuracy": 0.1135, "iterations": 10000,
              "wall_time_s": 900.0, "run_dir": str(case)}  # fmt: skip
    (case / "result.json").write_text(json.dumps(result))
    argv = ["reproduce", str(RECIPE), "--summary-only", "--runs-dir", str(tmp_path),
            "--data-dir", str(tmp_path / "nodata")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "LeNet(10)" in out and "did not converge" in out and "not run: mnist missing" in out
    summary = json.loads((tmp_path / "dropin_mnist_lenet" / "summary.json").read_text())
    assert summary["cases"][0]["verdict"] == "reproduced"
    assert summary["cases"][0]["final_test_accuracy"] == 0.1135


def test_a_run_in_progress_shows_how_far_it_got(tmp_path):
    recipe = load_recipe(RECIPE)
    case = tmp_path / "dropin_mnist_lenet" / recipe.cases[0].name
    case.mkdir(parents=True)
    (case / "config.json").write_text(json.dumps(recipe.config(recipe.cases[0]).to_dict()))
    records = [{"kind": "train", "iteration": 100 * i, "wall_time_s": 9.5 * i} for i in (1, 2)]
    (case / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    row = collect_results(recipe, tmp_path)[0]
    assert (row.iterations, row.wall_time_s, row.status) == (200, 19.0, "not finished")
    assert row.verdict == "not finished: iteration 200 of 10,000"
    assert "200 / 10,000" in format_table([row])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[train]\nmodel = 'lenet'\n", "at least one"),
        ("[[case]]\nexpect = 'converged'\n", "case 1 has no name"),
        ("[[case]]\nname = 'a'\nmax_iters = 3\n", "case 'a'.*unknown key 'max_iters'"),
        ("[[case]]\nname = 'a'\npaper = { metric = 'top5', value = 1 }\n", "metric must be"),
        ("[[case]]\nname = 'a'\npaper = { metric = 'accuracy', value = 1 }\n", "tolerance"),
        ("[[case]]\nname = 'a'\npaper = { metric = 'converged', value = 1 }\n", "true or false"),
        ("[[case]]\nname = 'a'\npaper = { metric = 'converged', value = true, tol = 1 }\n",
         "unknown key 'tol'"),
        ("[[case]]\nname = 'a'\npaper = { metric = 'time_saving', value = 25, tolerance = 5 }\n",
         "baseline"),
        ("[[case]]\nname = 'a'\nexpect = 'works'\n", "expect must be"),
        ("[[case]]\nname = 'a'\n[[case]]\nname = 'a'\n", "two cases are named 'a'"),
        ("paper = 'x'\ntolerence = 1\n[[case]]\nname = 'a'\n", "unknown top-level key"),
        ("[[case]]\nname = 'a'\nruns_dir = 'x'\n", "set by grownet reproduce"),
    ],
)  # fmt: skip
def test_recipe_mistakes(tmp_path, text, match):
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_recipe(path)


@pytest.mark.parametrize(
    ("status", "paper", "verdict"),
    [
        ("diverged", False, "reproduced"),  # a diverged run did not converge either
        ("did not converge", False, "reproduced"),
        ("converged", False, "not reproduced"),
        ("diverged", True, "not reproduced"),
    ],
)
def test_a_diverged_run_did_not_converge_either(tmp_path, status, paper, verdict):
    from grownet.reproduce.recipe import PaperValue
    from grownet.reproduce.results import measure
    from grownet.reproduce.verdict import compare
    from grownet.train.rundir import RunDir

    value = PaperValue("converged", paper)
    measured = measure(value, RunDir(tmp_path), {"status": status}, None)
    assert compare(value, measured).verdict == verdict
