"""``grownet reproduce --list``: every shipped recipe, its cases, its data, and what has run.

Nothing is trained or loaded: data presence is told from file names
(:mod:`grownet.reproduce.data`), results from the case directories' ``result.json``.
"""

from __future__ import annotations

from pathlib import Path

from grownet.reproduce.data import data_location, missing_data
from grownet.reproduce.recipe import Recipe, load_recipe
from grownet.reproduce.results import progress
from grownet.reproduce.scale import SCALES, run_folder
from grownet.train.rundir import RunDir


def _results(recipe: Recipe, case: str, runs_dir: Path) -> str:
    """``full: converged, 10,000 it`` / ``quick: ...`` for each scale with a run."""
    found = []
    for scale in SCALES:
        run = RunDir(runs_dir / run_folder(recipe.name, scale) / case)
        if run.file("result.json").exists():
            result = run.read_json("result.json")
            found.append(f"{scale}: {result.get('status')}, {result.get('iterations', 0):,} it")
        elif run.holds_run():  # still training, or stopped: how far it got
            found.append(f"{scale}: not finished, iteration {progress(run)['iterations']:,}")
    return "; ".join(found) or "no results"


def describe_recipe(recipe: Recipe, *, runs_dir: str | Path, data_dir: str | None) -> str:
    """A recipe's block of the listing."""
    runs = Path(runs_dir)
    lines = [f"{recipe.name}  ({len(recipe.cases)} cases)  {recipe.path}"]
    for dataset in recipe.datasets():
        missing = missing_data(dataset, data_dir)
        where = data_location(dataset, data_dir)
        state = "present" if not missing else f"MISSING {', '.join(missing)}"
        lines.append(f"  data {dataset}: {state}" + (f" in {where}" if where else " (bundled)"))
    width = max(len(c.name) for c in recipe.cases)
    for case in recipe.cases:
        lines.append(f"  {case.name:<{width}}  {_results(recipe, case.name, runs)}")
    return "\n".join(lines)


def list_recipes(*, runs_dir: str | Path, data_dir: str | None) -> str:
    """The listing of every shipped recipe."""
    from grownet.shipped import shipped_names, shipped_path

    recipes = [load_recipe(shipped_path("recipe", name)) for name in shipped_names("recipe")]
    blocks = [describe_recipe(r, runs_dir=runs_dir, data_dir=data_dir) for r in recipes]
    return "\n\n".join(blocks)
