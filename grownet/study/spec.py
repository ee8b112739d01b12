"""A study spec: one TOML file says what an Optuna study varies, how it samples, what it scores.

``kind = "train"`` (the default): a trial is one training run; the file holds the run's
``dataset``, ``[base]`` and ``[train]`` tables like a search spec, and knobs may be ``train.*``
and ``model.*``. ``kind = "search"``: a trial is a whole growth search from the search spec
``search = "digits"`` (a shipped name or a path) with sampled knobs (``growth.*``, ``width.*``,
``depth.*``, ``verify.*``, ``train.*``, ``model.*``); its objectives are the recommended
network's. ::

    name = "digits_nas"
    dataset = "digits"
    [study]
    objectives = ["accuracy", "params"]   # accuracy (max); params, flops, ms_per_iter,
                                          # train_time (min)
    sampler = "nsga2"       # tpe (one objective), nsga2 (several), random, grid
    pruner = "none"         # median (one objective), hyperband, none (several)
    n_trials = 12           # finished trials over all workers (default: a grid's size, or 20)
    timeout_s = 0           # per worker; 0: none
    seed = 0
    heartbeat_s = 60        # a worker silent this long (x2) is dead: its trial fails, is retried
    [base]
    model = "convnet"
    [train]
    max_iter = 600
    [space.model.widths]    # see grownet.study.space
    type = "categorical"
    choices = [8, 16, 32]
    length = 2

Every mistake is one line naming the key, the value and what is allowed, raised before
anything is written.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from grownet.graph import NetGraph
from grownet.search.spec import (
    GrowthSpec,
    SearchSpec,
    SweepSpec,
    ValidateSpec,
    VerifySpec,
    read_toml,
    spec_from_dict,
)
from grownet.study.space import Param, SpaceError, flatten, parse_param
from grownet.train.config import TrainConfig
from grownet.train.rundir import check_run_name

OBJECTIVES = {
    "accuracy": "maximize",
    "params": "minimize",
    "flops": "minimize",
    "ms_per_iter": "minimize",
    "train_time": "minimize",
}
SAMPLERS = ("tpe", "random", "grid", "nsga2")
PRUNERS = ("median", "hyperband", "none")
KINDS = ("train", "search")
DEFAULT_TRIALS = 20
# TrainConfig keys a study owns: where trials go, and what defines the run itself.
_NOT_KNOBS = {"name", "runs_dir", "model", "dataset", "model_options", "extensions"}
_SECTION_FIELDS = {
    "growth": GrowthSpec,
    "width": SweepSpec,
    "depth": SweepSpec,
    "verify": VerifySpec,
}


class StudySpecError(SpaceError):
    """A study spec mistake; the message names the key and the fix."""


@dataclass(frozen=True)
class StudySpec:
    name: str
    kind: str
    objectives: tuple[str, ...]
    sampler: str
    pruner: str
    n_trials: int
    timeout_s: float
    seed: int
    heartbeat_s: int
    space: tuple[Param, ...]
    tables: dict[str, Any]
    """The run's own tables: the study file's (kind train) or the search spec's (kind search)."""
    source: str
    search_source: str | None = None
    runs_dir: str = "runs"
    data_dir: str | None = None
    device: str | None = None

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o] for o in self.objectives]

    @property
    def study_name(self) -> str:
        """The Optuna study's name in its storage (a recipe's grid over some cases differs)."""
        return self.name

    def run_name(self, values: dict[str, Any], number: int) -> str:
        """Where, relative to the study directory, the trial ``number`` with the knobs'
        ``values`` trains (a recipe's trial trains in its case's directory)."""
        return f"trials/{number}"

    def to_dict(self) -> dict[str, Any]:
        """What defines the study (not where it runs): saved as ``study.json``."""
        data = dataclasses.asdict(self)
        for key in ("runs_dir", "data_dir", "device", "source"):
            data.pop(key)
        return data

    def search_spec(self, values: dict[str, Any], *, name: str, runs_dir: str) -> SearchSpec:
        """The search spec of one trial (kind search) with the knobs' ``values`` in it."""
        tables = apply_knobs(self.tables, values)
        return spec_from_dict(
            tables, path=Path(self.search_source or self.source), name=name, runs_dir=runs_dir,
            data_dir=self.data_dir, device=self.device,
        )  # fmt: skip

    def train_config(self, values: dict[str, Any], *, name: str, runs_dir: str) -> TrainConfig:
        """The TrainConfig of one trial (kind train) with the knobs' ``values`` in it."""
        tables = apply_knobs(self.tables, values)
        base = tables.get("base", {})
        where = {"data_dir": self.data_dir, "device": self.device}
        data = {
            **tables.get("train", {}),
            **{k: v for k, v in where.items() if v is not None},
            "dataset": tables["dataset"],
            "model": base["model"],
            "model_options": dict(base.get("options", {})),
            "name": name,
            "runs_dir": runs_dir,
        }
        return TrainConfig.from_dict(data, source=f"{self.source} [train]")

    def validated(self, config: TrainConfig) -> TrainConfig:
        """``config`` with the validation split a trial is scored on: ``[train] val_size``
        as given, else the search's default hold-out (:class:`ValidateSpec`), so the test
        split is read once per trial, after it, and feeds neither objective nor pruner."""
        if "val_size" in self.tables.get("train", {}):
            return config
        config.val_size = _held_out(config.dataset, config.data_dir, config.download)
        return config

    def initial_network(
        self, values: dict[str, Any], config: TrainConfig, *, study_dir: Path
    ) -> tuple[NetGraph, dict[str, Tensor]] | None:
        """The network and weights a trial starts from, when not its config's network from
        scratch (a recipe's grown cases)."""
        return None


@functools.lru_cache(maxsize=8)
def _held_out(dataset: str, data_dir: str | None, download: bool) -> int:
    """The search's default validation hold-out (:class:`ValidateSpec`) for a trial's data."""
    return ValidateSpec().held_out(dataset, data_dir=data_dir, download=download)


def apply_knobs(tables: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of the spec's tables with each knob's value written where its name says.

    >>> apply_knobs({"base": {"model": "convnet"}}, {"model.widths": [8, 16]})["base"]
    {'model': 'convnet', 'options': {'widths': [8, 16]}}
    """
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in tables.items()}
    for name, value in values.items():
        section, key = name.split(".", 1)
        if section == "model":
            base = out.setdefault("base", {})
            base["options"] = {**base.get("options", {}), key: value}
        else:
            out.setdefault(section, {})[key] = value
    return out


def _one_of(where: str, key: str, value: Any, allowed: tuple[str, ...]) -> Any:
    if value not in allowed:
        raise StudySpecError(f"{where}: {key} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _study_table(table: Any, source: str) -> dict[str, Any]:
    where = f"{source} [study]"
    if not isinstance(table, dict):
        raise StudySpecError(f"{where}: expected a table, got {table!r}")
    known = {"kind", "search", "objectives", "sampler", "pruner", "n_trials", "timeout_s",
             "seed", "heartbeat_s"}  # fmt: skip
    unknown = sorted(set(table) - known)
    if unknown:
        listed = ", ".join(sorted(known))
        raise StudySpecError(f"{where}: unknown key {unknown[0]!r}; known: {listed}")
    kind = _one_of(where, "kind", table.get("kind", "train"), KINDS)
    objectives = table.get("objectives", ["accuracy"])
    if isinstance(objectives, str):
        objectives = [objectives]
    if (not isinstance(objectives, list) or not objectives
            or any(o not in OBJECTIVES for o in objectives)):  # fmt: skip
        raise StudySpecError(f"{where}: objectives must be a list of {', '.join(OBJECTIVES)}, "
                             f"got {objectives!r}")  # fmt: skip
    if len(set(objectives)) != len(objectives):
        raise StudySpecError(f"{where}: objectives has duplicates: {objectives!r}")
    several = len(objectives) > 1
    sampler = _one_of(where, "sampler", table.get("sampler", "nsga2" if several else "tpe"),
                      SAMPLERS)  # fmt: skip
    pruner = _one_of(where, "pruner", table.get("pruner", "none" if several else "median"),
                     PRUNERS)  # fmt: skip
    if several and pruner != "none":
        raise StudySpecError(f"{where}: pruner {pruner!r} needs one objective (Optuna prunes "
                             f"single-objective studies only); use pruner = \"none\"")  # fmt: skip
    numbers = {}
    for key, default, low in (("n_trials", 0, 1), ("seed", 0, 0), ("heartbeat_s", 60, 1)):
        # n_trials 0: unset (a grid's size, else DEFAULT_TRIALS)
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or (value < low and key in table):
            raise StudySpecError(f"{where}: {key} must be an integer >= {low}, got {value!r}")
        numbers[key] = value
    timeout = table.get("timeout_s", 0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise StudySpecError(f"{where}: timeout_s must be a number >= 0 (0: none), got {timeout!r}")
    search = table.get("search")
    if kind == "search" and not isinstance(search, str):
        raise StudySpecError(f'{where}: kind = "search" needs search = "<spec name or path>"')
    if kind == "train" and search is not None:
        raise StudySpecError(f'{where}: search = {search!r} is for kind = "search"')
    return {"kind": kind, "objectives": tuple(objectives), "sampler": sampler, "pruner": pruner,
            "timeout_s": float(timeout), "search": search, **numbers}  # fmt: skip


def _check_knob(param: Param, kind: str, tables: dict[str, Any], source: str) -> None:
    where = f"{source} [space.{param.name}]"
    if param.section == "train":
        fields = {f.name for f in dataclasses.fields(TrainConfig)} - _NOT_KNOBS
        if param.key not in fields:
            raise StudySpecError(f"{where}: {param.key!r} is not a TrainConfig key a trial may "
                                 f"vary; known: {', '.join(sorted(fields))}")  # fmt: skip
    elif param.section == "model":
        from grownet.zoo import MODELS

        model = tables.get("base", {}).get("model")
        options = inspect.signature(MODELS[model]).parameters if model in MODELS else {}
        if param.key not in options:
            raise StudySpecError(f"{where}: model {model!r} has no option {param.key!r}; "
                                 f"options: {', '.join(options)}")  # fmt: skip
    elif kind == "train":
        raise StudySpecError(f'{where}: {param.section}.* knobs are for kind = "search"; '
                             "a training study varies train.* and model.*")  # fmt: skip
    else:
        fields = {f.name for f in dataclasses.fields(_SECTION_FIELDS[param.section])}
        if param.key not in fields:
            raise StudySpecError(f"{where}: [{param.section}] has no key {param.key!r}; known: "
                                 f"{', '.join(sorted(fields))}")  # fmt: skip


def load_study_spec(
    path: str | Path,
    *,
    name: str | None = None,
    runs_dir: str | None = None,
    data_dir: str | None = None,
    device: str | None = None,
    trials: int | None = None,
    timeout_s: float | None = None,
) -> StudySpec:
    """Read and check a study spec; the keyword arguments are the command line's overrides.

    Example:
        >>> spec = load_study_spec("search/digits_nas.toml")
        >>> spec.objectives, spec.sampler
        (('accuracy', 'params'), 'nsga2')
    """
    from grownet.shipped import resolve

    path = Path(path)
    data = read_toml(path)
    source = str(path)
    if "study" not in data:
        raise StudySpecError(
            f"{source} has no [study] table: it is not a study spec (a search spec runs with "
            "`grownet search`); see search/digits_nas.toml"
        )
    study = _study_table(data.pop("study"), source)
    space_table = data.pop("space", {})
    if not isinstance(space_table, dict):
        raise StudySpecError(f"{source}: [space] must hold one table per knob")
    spec_name = name or data.pop("name", None) or path.stem
    study_runs = runs_dir or data.pop("runs_dir", None) or "runs"
    check_run_name(spec_name, what=f"{source}: name")
    search_source = None
    if study["kind"] == "search":
        if set(data) - {"name", "runs_dir"}:
            extra = sorted(set(data) - {"name", "runs_dir"})[0]
            raise StudySpecError(f"{source}: {extra!r} belongs in the search spec "
                                 f"{study['search']!r}, not in a study of searches")  # fmt: skip
        search_path = resolve(study["search"], "spec")
        search_source = str(search_path)
        tables = read_toml(search_path)
    else:
        tables = data
        for key in ("dataset",):
            if not isinstance(tables.get(key), str):
                raise StudySpecError(f'{source}: dataset = "..." is required (e.g. "digits")')
        if not isinstance(tables.get("base", {}).get("model"), str):
            raise StudySpecError(f'{source}: [base] needs model = "<zoo model>"')
    space = tuple(parse_param(n, t, source) for n, t in flatten(space_table).items())
    if not space:
        raise StudySpecError(f"{source}: [space] names no knob; add e.g. [space.train.base_lr]")
    for param in space:
        _check_knob(param, study["kind"], tables, source)
    if trials is not None and trials < 1:
        raise StudySpecError(f"--trials must be an integer >= 1, got {trials}")
    n_trials = trials if trials is not None else study["n_trials"]
    if not n_trials:
        n_trials = grid_size(space) if study["sampler"] == "grid" else DEFAULT_TRIALS
    if not n_trials or n_trials < 1:
        raise StudySpecError(f"{source} [study]: n_trials must be an integer >= 1 (or --trials N)")
    spec = StudySpec(
        name=spec_name, kind=study["kind"], objectives=study["objectives"],
        sampler=study["sampler"], pruner=study["pruner"], n_trials=n_trials,
        timeout_s=study["timeout_s"] if timeout_s is None else timeout_s, seed=study["seed"],
        heartbeat_s=study["heartbeat_s"], space=space, tables=tables, source=source,
        search_source=search_source, runs_dir=study_runs, data_dir=data_dir, device=device,
    )  # fmt: skip
    check_first_trial(spec)
    return spec


def grid_size(space: tuple[Param, ...]) -> int:
    size = 1
    for param in space:
        for values in param.grid().values():
            size *= len(values)
    return size


def first_values(spec: StudySpec) -> dict[str, Any]:
    """Each knob at its first value (low end, first choice, shortest list)."""
    values = {}
    for p in spec.space:
        one = p.choices[0] if p.kind == "categorical" else p.low
        values[p.name] = one if p.length[1] == 0 else [one] * p.length[0]
    return values


def check_first_trial(spec: StudySpec) -> None:
    """Build the first trial's run spec, so a mistake in the tables surfaces before any
    trial (and before anything is written)."""
    values = first_values(spec)
    if spec.kind == "search":
        spec.search_spec(values, name="check", runs_dir=spec.runs_dir)
        return
    from grownet.zoo import build

    config = spec.train_config(values, name="check", runs_dir=spec.runs_dir)
    build(config.model, **config.model_options)  # the dataset's shape comes at the first trial
