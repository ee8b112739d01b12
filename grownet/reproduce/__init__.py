"""Paper recipes: every case of a paper's experiment trained, and compared with the paper.

A recipe is a TOML file in ``recipes/`` (:mod:`grownet.reproduce.recipe`; the schema is in
``recipes/README.md``): shared solver settings under ``[train]``, the paper's claim under
``paper``/``notes``, and one ``[[case]]`` table per table row or figure curve with its
settings and the paper's value. ``grownet reproduce`` runs the cases as an Optuna grid study
(:mod:`grownet.reproduce.grid`) in ``runs/<recipe>/``, each case a normal training run in
``runs/<recipe>/<case>/``, and writes the paper-versus-measured table
(:mod:`grownet.reproduce.results`) beside them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from grownet.devices import available_device
from grownet.errors import UserError
from grownet.reproduce.data import data_location, missing_data
from grownet.reproduce.grid import RecipeRunner, check_case_dirs, recipe_spec
from grownet.reproduce.recipe import Case, PaperValue, Recipe, load_recipe
from grownet.reproduce.results import CaseResult, collect_results, format_table, write_summary
from grownet.reproduce.scale import run_folder
from grownet.train.config import ConfigError, TrainConfig

__all__ = [
    "Case",
    "CaseResult",
    "PaperValue",
    "Recipe",
    "RecipeRunner",
    "collect_results",
    "format_table",
    "load_recipe",
    "plan_recipe",
    "require_some_data",
    "run_recipe",
    "write_summary",
]


def plan_recipe(
    recipe: Recipe,
    *,
    cases: Sequence[str] | None = None,
    scale: str = "full",
    overrides: dict[str, Any] | None = None,
) -> list[tuple[str, TrainConfig, list[str]]]:
    """Every (selected) case with its checked config and its missing data files: all mistakes
    surface before any run. A case's network is built here too (cheap: no weights)."""
    from grownet.zoo import build

    chosen = [recipe.case(name) for name in dict.fromkeys(cases or recipe.case_names)]
    plan = []
    for case in chosen:
        config = recipe.config(case, scale=scale, **(overrides or {}))
        try:
            build(config.model, **config.model_options)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{recipe.path} case {case.name!r}: {err}") from None
        plan.append((case.name, config, missing_data(config.dataset, config.data_dir)))
    where = "--device" if "device" in (overrides or {}) else f"{recipe.path} device"
    for device in {config.device for _, config, _ in plan}:  # here, not in the first trial
        available_device(device, label=where)
    return plan


class NoDataError(UserError, FileNotFoundError):
    """No selected case of a recipe has its data (and no earlier run of it to report)."""


def require_some_data(
    recipe: Recipe, plan: list[tuple[str, TrainConfig, list[str]]], *, runs_dir: str, scale: str
) -> None:
    """Raise :class:`NoDataError` when no planned case has its data and the recipe has no
    earlier runs to report: a run would create a folder and a report of nothing."""
    earlier = Path(runs_dir) / run_folder(recipe.name, scale)
    if any(not missing for _, _, missing in plan) or earlier.exists():
        return
    # One clause per dataset: a recipe's cases mostly share one.
    absent: dict[str, str] = {}
    for _, config, missing in plan:
        where = data_location(config.dataset, config.data_dir)
        absent.setdefault(config.dataset, f"{config.dataset} ({', '.join(missing)} in {where})")
    raise NoDataError(f"{recipe.name}: none of its {len(plan)} case(s) can run: missing "
                      f"{'; '.join(absent.values())}; place the files there or pass --data-dir")


def run_recipe(
    recipe: Recipe,
    *,
    cases: Sequence[str] | None = None,
    scale: str = "full",
    overrides: dict[str, Any] | None = None,
    plan: list[tuple[str, TrainConfig, list[str]]] | None = None,
    runs_dir: str = "runs",
    workers: int = 1,
    storage: str | None = None,
    quiet: bool = True,
    echo: Callable[[str], None] = print,
    worker: int | None = None,
) -> dict[str, Any]:
    """Train the (selected) cases whose data is present as a grid study; returns the summary
    (``text``, ``rows`` of every case, ``dir``, ``report``). A rerun continues: finished cases
    are not trained again. ``plan``: :func:`plan_recipe`'s, when the caller checked the cases
    already (else they are planned here). ``worker``: this process is a worker another one
    started."""
    overrides = dict(overrides or {})
    runs_dir = str(overrides.pop("runs_dir", runs_dir))
    quiet = bool(overrides.pop("quiet", quiet))
    if plan is None:
        plan = plan_recipe(recipe, cases=cases, scale=scale, overrides=overrides)
    ready = [name for name, _, missing in plan if not missing]
    if worker is None:
        require_some_data(recipe, plan, runs_dir=runs_dir, scale=scale)
    for name, config, missing in plan:
        if missing and worker is None:
            echo(f"{name}: not run: {config.dataset} missing ({', '.join(missing)})")
    spec = recipe_spec(recipe, ready, scale=scale, runs_dir=runs_dir, overrides=overrides)
    runner = RecipeRunner(spec, storage=storage, workers=workers, echo=echo, quiet=quiet)
    if worker is not None:
        runner.run(worker=worker)
        return {}
    if not ready:
        return runner.finish()
    check_case_dirs(spec)
    return runner.run()
