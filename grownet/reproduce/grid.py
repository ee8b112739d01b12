"""A recipe run as an Optuna grid study: the cases are the grid, a trial trains one case.

The recipe's directory (``runs/<recipe>/``, or ``runs/<recipe>-quick/``) is the study
directory of :class:`grownet.study.runner.StudyRunner`, so a recipe gets its workers,
storages (SQLite, a journal file for ``--workers``, PostgreSQL shared by many machines), dead
worker retries and Ctrl-C-and-rerun for free. The sampler is a GridSampler over one
categorical parameter ``case``; the trial trains in ``runs/<recipe>/<case>/`` (where results
always were), and its user attributes hold its result (``run_dir`` is the case).

One Optuna study per case selection (``--case``): a grid and its trial count are exact for
that selection. A case that finished under another selection is not trained again: its trial
finds the finished run directory and only reads its result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from grownet.errors import BadValueError
from grownet.graph import NetGraph
from grownet.reproduce.recipe import Recipe
from grownet.reproduce.results import format_table, write_summary
from grownet.reproduce.scale import run_folder
from grownet.study.runner import StudyRunner
from grownet.study.space import Param
from grownet.study.spec import StudySpec
from grownet.train.config import TrainConfig
from grownet.train.resume import changed_settings
from grownet.train.rundir import RunDir

# Settings a continued case may differ in: threads are the run's own
# (see grownet.train.rundir.run_threads).
_MAY_DIFFER = {"threads", "extensions"}
_LONGEST_NAME = 400  # Optuna's RDB storages keep study names up to 512 characters


@dataclass(frozen=True)
class RecipeSpec(StudySpec):
    """A recipe's grid study: the spec :class:`StudyRunner` runs, with the recipe's cases."""

    recipe: Recipe | None = None
    scale: str = "full"
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def cases(self) -> tuple[str, ...]:
        return tuple(self.space[0].choices)

    @property
    def study_name(self) -> str:
        selection = ", ".join(self.cases)
        if len(selection) > _LONGEST_NAME:
            selection = hashlib.sha1(selection.encode()).hexdigest()[:12]
        return f"{self.name} [{selection}]"

    def run_name(self, values: dict[str, Any], number: int) -> str:
        return values["case"]

    def to_dict(self) -> dict[str, Any]:
        """What must stay the same across reruns in the directory (its cases guard the rest:
        a case directory refuses other settings)."""
        assert self.recipe is not None
        return {"kind": "recipe", "recipe": self.recipe.name, "scale": self.scale}

    def train_config(self, values: dict[str, Any], *, name: str, runs_dir: str) -> TrainConfig:
        assert self.recipe is not None
        case = self.recipe.case(values["case"])
        return self.recipe.config(case, scale=self.scale, **self.overrides, name=name,
                                  runs_dir=runs_dir)  # fmt: skip

    def validated(self, config: TrainConfig) -> TrainConfig:
        """A paper recipe keeps its paper's protocol (its cases' own ``val_size``, if any)."""
        return config

    def initial_network(
        self, values: dict[str, Any], config: TrainConfig, *, study_dir: Path
    ) -> tuple[NetGraph, dict[str, Tensor]] | None:
        """A grown case starts from its source case's final weights (trained first if need
        be): :mod:`grownet.reproduce.grown`."""
        assert self.recipe is not None
        case = self.recipe.case(values["case"])
        if case.grow is None:
            return None
        from grownet.reproduce.grown import grown_start

        return grown_start(self.recipe, case, config, study_dir=study_dir, scale=self.scale,
                           overrides=self.overrides)  # fmt: skip


def recipe_spec(
    recipe: Recipe, cases: Sequence[str], *, scale: str, runs_dir: str,
    overrides: dict[str, Any],
) -> RecipeSpec:  # fmt: skip
    """The grid study over ``cases`` of ``recipe`` (``overrides``: TrainConfig keys)."""
    return RecipeSpec(
        name=run_folder(recipe.name, scale),
        kind="train",
        objectives=("accuracy",),
        sampler="grid",
        pruner="none",
        n_trials=len(cases),
        timeout_s=0.0,
        seed=0,
        heartbeat_s=60,
        space=(Param("case", "categorical", choices=tuple(cases)),),
        tables={},
        source=str(recipe.path),
        runs_dir=runs_dir,
        data_dir=overrides.get("data_dir"),
        device=overrides.get("device"),
        recipe=recipe,
        scale=scale,
        overrides=dict(overrides),
    )


def check_case_dirs(spec: RecipeSpec) -> None:
    """Refuse, before any trial, a case directory that holds a run with other settings (a
    trial could only fail on it, and the grid would count it as done)."""
    study_dir = Path(spec.runs_dir) / spec.name
    for case in spec.cases:
        saved = study_dir / case / "config.json"
        if not saved.exists():
            continue
        now = spec.train_config({"case": case}, name=case, runs_dir=str(study_dir)).to_dict()
        changed = [k for k in changed_settings(RunDir(saved.parent).read_json("config.json"),
                                               now) if k not in _MAY_DIFFER]  # fmt: skip
        if changed:
            raise BadValueError(
                f"{saved.parent} holds a run with other settings ({', '.join(changed[:4])}); "
                "rerun with the same flags, or pass another --runs-dir"
            )


class RecipeRunner(StudyRunner):
    """:class:`StudyRunner` for a recipe: its workers rerun ``grownet reproduce``, and its
    summary is the paper-versus-measured table."""

    spec: RecipeSpec

    def worker_argv(self) -> list[str]:
        spec = self.spec
        assert spec.recipe is not None
        argv = ["reproduce", str(spec.recipe.path), "--runs-dir", spec.runs_dir,
                "--storage", self.storage, "--workers", str(self.workers),
                "--scale", spec.scale]  # fmt: skip
        for case in spec.cases:
            argv += ["--case", case]
        for key in ("max_iter", "data_dir", "device", "threads", "seed"):
            if spec.overrides.get(key) is not None:
                argv += ["--" + key.replace("_", "-"), str(spec.overrides[key])]
        return argv + (["--quiet"] if self.quiet else [])

    def finish(self, *, compare: list[Path] | None = None) -> dict[str, Any]:
        """Rebuild the recipe's summary from its case directories, and its report."""
        spec = self.spec
        assert spec.recipe is not None
        where, rows = write_summary(spec.recipe, spec.runs_dir, scale=spec.scale,
                                    data_dir=spec.data_dir)  # fmt: skip
        summary: dict[str, Any] = {"text": format_table(rows), "rows": rows, "dir": str(where)}
        from grownet.report import try_write_report

        if report := try_write_report(where):
            summary["report"] = str(report)
        return summary
