"""Every CIFAR-10/100, SVHN and ImageNet recipe end to end at ``--scale quick`` on small files in
the datasets' real on-disk formats (CIFAR python pickles through the restricted unpickler, SVHN
.mat files, an ImageNet folder of JPEGs): the real readers, preprocessing, networks and recipe
code all run. One training step per case, on batches of 4 (these files hold a few dozen
images); the verdicts stay "not run: quick scale"."""

import json

import pytest

from grownet.reproduce import load_recipe, run_recipe
from grownet.shipped import shipped_names, shipped_path

REAL = {"mnist", "digits", "tinyshakespeare"}  # their real files are here
PAPER_DATA = [
    name
    for name in shipped_names("recipe")
    if {load_recipe(shipped_path("recipe", name)).config(c).dataset
        for c in load_recipe(shipped_path("recipe", name)).cases} - REAL
]  # fmt: skip


def test_every_recipe_on_missing_datasets_is_covered():
    assert len(PAPER_DATA) == 11


@pytest.mark.parametrize("name", PAPER_DATA)
def test_recipe_runs_end_to_end_at_quick_scale(name, fake_paper_data, tmp_path):
    recipe = load_recipe(shipped_path("recipe", name))
    datasets = {}
    for case in recipe.cases:  # one case per dataset, the last (most grown) one
        datasets[recipe.config(case).dataset] = case.name
    overrides = {"max_iter": 1, "batch_size": 4, "test_batch_size": 4, "threads": 1,
                 "data_dir": str(fake_paper_data)}  # fmt: skip
    summary = run_recipe(recipe, cases=list(datasets.values()), scale="quick",
                         overrides=overrides, runs_dir=str(tmp_path / "runs"),
                         echo=lambda line: None)  # fmt: skip
    rows = {r.case: r for r in summary["rows"]}
    for case in datasets.values():
        row = rows[case]
        assert row.iterations == 1 and row.status != "not run", (case, row.status)
        quick = "no paper value" if recipe.case(case).paper is None else "not run: quick scale"
        assert row.verdict == quick, (case, row.verdict)
        assert "quick: not the paper's budget" in row.measured
    saved = json.loads((tmp_path / "runs" / f"{name}-quick" / "summary.json").read_text())
    assert saved["scale"] == "quick" and "every iteration count / 100" in saved["scale_note"]
