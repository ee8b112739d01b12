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
        "runs_dir": str(tmp_path), "data_dir": str(DATA), "quiet": True, "max_iter": 600,
        "test_interval": 600, "checkpoint_interval": 0, "model_options": {"dropin_length": 1000},
    }  # fmt: skip
    rows = run_recipe(recipe, cases=["lenet10", "lenet10-dropin-2500"], overrides=overrides)
    plain, dropin = rows
    assert plain.status == "did not converge" and plain.final_test_accuracy < 0.2
    assert dropin.status == "converged" and dropin.final_test_accuracy > 0.9
    assert plain.network == "LeNet(10)" and dropin.network == "LeNet(10)+DropIn"
    assert [r.case for r in collect_results(recipe, tmp_path)] == ["lenet10", "lenet10-dropin-2500"]
    table = format_table(rows)
    assert "LeNet(10)+DropIn" in table and "did not converge" in table


def test_summary_only_rebuilds_the_table(tmp_path, capsys):
    case = tmp_path / "dropin_mnist_lenet" / "lenet10"
    case.mkdir(parents=True)
    config = load_recipe(RECIPE).config(load_recipe(RECIPE).cases[0])
    (case / "config.json").write_text(json.dumps(config.to_dict()))
    result = {"status": "did not converge", "final_test_accuracy": 0.1135, "iterations": 10000,
              "wall_time_s": 900.0, "run_dir": str(case)}  # fmt: skip
    (case / "result.json").write_text(json.dumps(result))
    assert main(["reproduce", str(RECIPE), "--summary-only", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "LeNet(10)" in out and "11.35%" in out and "did not converge" in out
    summary = json.loads((tmp_path / "dropin_mnist_lenet" / "summary.json").read_text())
    assert summary["cases"][0]["matches_paper"] is True


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[train]\nmodel = 'lenet'\n", "at least one"),
        ("[[case]]\nexpect = 'converged'\n", "case 1 has no name"),
        ("[[case]]\nname = 'a'\nmax_iters = 3\n", "case 'a'.*unknown key 'max_iters'"),
    ],
)
def test_recipe_mistakes(tmp_path, text, match):
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_recipe(path)


@pytest.mark.parametrize(
    ("expect", "status", "matches"),
    [
        ("did not converge", "diverged", True),
        ("did not converge", "did not converge", True),
        ("did not converge", "converged", False),
        ("converged", "diverged", False),
        (None, "converged", None),
    ],
)
def test_a_diverged_run_did_not_converge_either(expect, status, matches):
    from grownet.reproduce import CaseResult

    row = CaseResult("c", "LeNet(30)", None, status, None, 10, 1.0, expect, "runs/x")
    assert row.matches_paper is matches
