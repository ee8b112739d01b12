"""A recipe file: the paper's settings and numbers for one experiment, checked key by key.

A recipe is a TOML file (``recipes/*.toml``; the schema is in ``recipes/README.md``)::

    paper = "what the paper claims, and where"
    notes = "what was decided where the paper is silent, and why"
    tolerance = 0.5                  # default for numeric paper values, percentage points
    [train]                          # TrainConfig keys shared by every case
    model = "lenet2n"
    [train.model_options]
    n = 5
    [[case]]                         # one table row or figure curve
    name = "lenet10-dropin-2500"
    model_options = { dropin_length = 2500 }
    paper = { metric = "accuracy", value = 99.0, approx = true, source = "Fig. 2" }
    [[case]]                         # grown from another case's final weights
    name = "lenet10-grown-identity"
    from = "lenet"                   # that case trains first; this one continues its schedule
    new_layers = "identity"          # layers the source lacks: "filler" (default) or "identity"
    model_options = { n = 5, dropin = false }
    # or, to widen:  widen = { init = "random" | "net2net", length = 750 }  (0: at once)

Every mistake is one line naming the file, the case and the key, raised before any run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grownet.reproduce.scale import scale_settings
from grownet.specfile import read_toml
from grownet.train.config import ConfigError, TrainConfig
from grownet.train.rundir import check_run_name

METRICS = ("accuracy", "test_error", "converged", "time_saving", "loss")
_TOP_KEYS = {"paper", "notes", "tolerance", "metric", "train", "case"}
# what a case without a paper value shows: its accuracy, or a language model's loss
SHOWN_METRICS = ("accuracy", "loss")
_PAPER_KEYS = {"metric", "value", "approx", "tolerance", "average_last", "baseline", "source"}
_EXPECT = {"converged": True, "did not converge": False}
# Settings that place or show a run rather than define it: a case may not set them.
_PLACEMENT = {"name", "runs_dir", "quiet"}


@dataclass(frozen=True)
class PaperValue:
    """What the paper reports for one case, and how close a measurement must come.

    ``value`` is a percentage (accuracy, test error, time saving) or a bool (converged);
    ``approx`` marks a value read from a figure; ``average_last`` averages the last N test
    evaluations (the DropIn paper's "average of last three values"); ``baseline`` is the case
    a time saving is measured against.
    """

    metric: str
    value: float | bool
    approx: bool = False
    tolerance: float | None = None
    average_last: int = 1
    baseline: str | None = None
    source: str = ""


NEW_LAYERS = ("filler", "identity", "stack", "middle", "zero")
WIDEN_INITS = ("random", "net2net")


@dataclass(frozen=True)
class GrowFrom:
    """A case that starts from case ``source``'s final weights (:mod:`grownet.reproduce.grown`).

    ``new_layers``: how layers the source lacks start, from their filler or as the identity
    (Net2DeeperNet). ``widen_init`` (``"random"`` or ``"net2net"``) widens the source's layers
    to the case's widths instead, mixing the new units in over ``widen_length`` iterations
    (0: at once).
    """

    source: str
    new_layers: str = "filler"
    widen_init: str | None = None
    widen_length: int = 0


@dataclass
class Case:
    name: str
    settings: dict[str, Any]
    paper: PaperValue | None = None
    grow: GrowFrom | None = None


@dataclass
class Recipe:
    name: str
    path: Path
    paper: str
    notes: str
    train: dict[str, Any]
    cases: list[Case] = field(default_factory=list)
    tolerance: float | None = None
    metric: str = "accuracy"
    """What a case without a paper value shows (``"loss"``: a language model's recipe)."""

    def config(self, case: Case, *, scale: str = "full", **overrides: Any) -> TrainConfig:
        """The case's run config: recipe defaults, then the case (both at ``scale``), then
        ``overrides`` (``model_options`` merge key by key at each level). A grown case's
        schedule goes on from where its source's ended."""
        if case.grow is not None:
            source = self.config(self.case(case.grow.source), scale=scale, **overrides)
            overrides = {**overrides, "schedule_offset": source.max_iter}
        layers = (self.train, case.settings)
        merged = {k: v for layer in layers for k, v in layer.items()}
        merged["model_options"] = {
            k: v for layer in layers for k, v in layer.get("model_options", {}).items()
        }
        settings = scale_settings(merged, scale)
        options = {**settings["model_options"], **overrides.get("model_options", {})}
        settings |= overrides
        settings["model_options"] = options
        settings.setdefault("name", f"{self.name}/{case.name}")
        return TrainConfig.from_dict(settings, source=f"{self.path} case {case.name!r}")

    def case(self, name: str) -> Case:
        for case in self.cases:
            if case.name == name:
                return case
        raise ConfigError(
            f"recipe {self.name} has no case {name!r}; cases: {', '.join(self.case_names)}"
        )

    @property
    def case_names(self) -> list[str]:
        return [c.name for c in self.cases]

    def datasets(self) -> list[str]:
        """The datasets the cases train on, in first-use order."""
        seen = [self.config(c).dataset for c in self.cases]
        return list(dict.fromkeys(seen))


def _number(where: str, key: str, value: Any, *, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise ConfigError(f"{where}: {key} must be a number >= {low:g}, got {value!r}")
    return float(value)


def parse_paper(data: Any, where: str, default_tolerance: float | None) -> PaperValue:
    """One case's ``paper`` table, every key checked (see ``recipes/README.md``)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: paper must be a table {{metric = ..., value = ...}}")
    unknown = sorted(set(data) - _PAPER_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: paper has unknown key {unknown[0]!r}; keys: {', '.join(sorted(_PAPER_KEYS))}"
        )
    metric = data.get("metric")
    if metric not in METRICS:
        raise ConfigError(f"{where}: paper metric must be one of {', '.join(METRICS)}, "
                          f"got {metric!r}")  # fmt: skip
    if "value" not in data:
        raise ConfigError(f"{where}: paper needs a value")
    value, tolerance = data["value"], data.get("tolerance", default_tolerance)
    approx, source = data.get("approx", False), data.get("source", "")
    if not isinstance(approx, bool):
        raise ConfigError(f"{where}: paper approx must be true or false, got {approx!r}")
    if not isinstance(source, str):
        raise ConfigError(f"{where}: paper source must be a string, got {source!r}")
    average = data.get("average_last", 1)
    if metric == "converged":
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: a converged paper value is true or false, got {value!r}")
        for key in ("tolerance", "average_last", "baseline"):
            if key in data:
                raise ConfigError(f"{where}: paper {key} means nothing for metric 'converged'")
        return PaperValue(metric, value, approx, source=source)
    value = _number(where, "paper value", value, low=-100.0)
    if tolerance is None:
        raise ConfigError(f"{where}: paper needs a tolerance (or the recipe a top-level one)")
    tolerance = _number(where, "paper tolerance", tolerance)
    if isinstance(average, bool) or not isinstance(average, int) or average < 1:
        raise ConfigError(f"{where}: paper average_last must be an integer >= 1, got {average!r}")
    baseline = data.get("baseline")
    if (metric == "time_saving") != (baseline is not None):
        raise ConfigError(f"{where}: paper baseline (a case name) is needed for metric "
                          "'time_saving' and only there")  # fmt: skip
    if baseline is not None and not isinstance(baseline, str):
        raise ConfigError(f"{where}: paper baseline must be a case name, got {baseline!r}")
    return PaperValue(metric, value, approx, tolerance, average, baseline, source)


def _parse_case(i: int, item: Any, path: Path, tolerance: float | None) -> Case:
    if not isinstance(item, dict):
        raise ConfigError(f"{path}: case {i + 1} must be a table")
    item = dict(item)
    name = item.pop("name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}: case {i + 1} has no name")
    check_run_name(name, what=f"{path}: case name")
    where = f"{path} case {name!r}"
    if "paper_accuracy" in item:  # the schema before paper tables
        raise ConfigError(f"{where}: 'paper_accuracy' is replaced by a paper table "
                          "(metric, value, tolerance; see recipes/README.md)")  # fmt: skip
    placed = sorted(_PLACEMENT & set(item))
    if placed:
        raise ConfigError(f"{where}: {placed[0]!r} is set by grownet reproduce, not a case")
    grow = _parse_grow(item, where)
    paper = item.pop("paper", None)
    if "expect" in item:  # shorthand for a converged paper value
        expect = item.pop("expect")
        if paper is not None or expect not in _EXPECT:
            raise ConfigError(f"{where}: expect must be one of {', '.join(map(repr, _EXPECT))}, "
                              f"without a paper table; got {expect!r}")  # fmt: skip
        paper = {"metric": "converged", "value": _EXPECT[expect]}
    return Case(
        name=name,
        settings=item,
        paper=None if paper is None else parse_paper(paper, where, tolerance),
        grow=grow,
    )


def _parse_grow(item: dict[str, Any], where: str) -> GrowFrom | None:
    """Pop a case's ``from``, ``new_layers`` and ``widen`` keys, checked."""
    source = item.pop("from", None)
    new_layers = item.pop("new_layers", None)
    widen = item.pop("widen", None)
    if source is None:
        if new_layers is not None or widen is not None:
            raise ConfigError(f"{where}: new_layers and widen need from = \"<case>\"")
        return None
    if not isinstance(source, str) or not source:
        raise ConfigError(f"{where}: from must name another case, got {source!r}")
    if "schedule_offset" in item:
        raise ConfigError(f"{where}: schedule_offset is set from the case named by from")
    new_layers = "filler" if new_layers is None else new_layers
    if new_layers not in NEW_LAYERS:
        raise ConfigError(f"{where}: new_layers must be one of {', '.join(NEW_LAYERS)}, "
                          f"got {new_layers!r}")  # fmt: skip
    if widen is None:
        return GrowFrom(source, new_layers)
    if not isinstance(widen, dict) or set(widen) - {"init", "length"}:
        raise ConfigError(f"{where}: widen must be a table with keys init and length, "
                          f"got {widen!r}")  # fmt: skip
    init, length = widen.get("init", "random"), widen.get("length", 0)
    if init not in WIDEN_INITS:
        raise ConfigError(f"{where}: widen init must be one of {', '.join(WIDEN_INITS)}, "
                          f"got {init!r}")  # fmt: skip
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ConfigError(f"{where}: widen length must be an integer >= 0 (0: at once), "
                          f"got {length!r}")  # fmt: skip
    if new_layers != "filler":
        raise ConfigError(f"{where}: new_layers is for deepening; a widened case has no new "
                          "layers")  # fmt: skip
    return GrowFrom(source, new_layers, init, length)


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe file: every case's config is built, every paper value parsed."""
    path = Path(path)
    if not path.exists():
        from grownet.shipped import shipped_names

        raise ConfigError(
            f"recipe {path} does not exist; the shipped recipes, which `grownet reproduce NAME` "
            f"runs, are: {', '.join(shipped_names('recipe'))}"
        )
    data = read_toml(path, error=ConfigError, missing=f"recipe {path} does not exist")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        keys = ", ".join(sorted(_TOP_KEYS))
        raise ConfigError(f"{path}: unknown top-level key {unknown[0]!r}; keys: {keys} "
                          "(solver settings go under [train])")  # fmt: skip
    for key in ("paper", "notes"):
        if not isinstance(data.get(key, ""), str):
            raise ConfigError(f"{path}: {key} must be a string")
    if not isinstance(data.get("train", {}), dict):
        raise ConfigError(f"{path}: train must be a table ([train])")
    tolerance = data.get("tolerance")
    if tolerance is not None:
        tolerance = _number(str(path), "tolerance", tolerance)
    metric = data.get("metric", "accuracy")
    if metric not in SHOWN_METRICS:
        raise ConfigError(f"{path}: metric must be one of {', '.join(SHOWN_METRICS)}, "
                          f"got {metric!r}")  # fmt: skip
    cases = [_parse_case(i, item, path, tolerance) for i, item in enumerate(data.get("case", []))]
    if not cases:
        raise ConfigError(f"{path}: a recipe needs at least one [[case]] table")
    names = [c.name for c in cases]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{path}: two cases are named {twice[0]!r}")
    recipe = Recipe(
        name=path.stem,
        path=path,
        paper=data.get("paper", ""),
        notes=data.get("notes", ""),
        train=data.get("train", {}),
        cases=cases,
        tolerance=tolerance,
        metric=metric,
    )
    for case in cases:
        source = case.grow.source if case.grow else None
        if source is not None and (source == case.name or source not in names):
            raise ConfigError(f"{path} case {case.name!r}: from {source!r} is not another case "
                              f"of the recipe; cases: {', '.join(names)}")  # fmt: skip
        if source is not None and recipe.case(source).grow is not None:
            raise ConfigError(f"{path} case {case.name!r}: from {source!r}, a case that is "
                              "grown itself; grow from a case trained from scratch")  # fmt: skip
    for case in cases:
        config = recipe.config(case)  # fail now, naming the case, rather than hours into the run
        if case.grow and config.dataset != recipe.config(recipe.case(case.grow.source)).dataset:
            raise ConfigError(f"{path} case {case.name!r}: grows from {case.grow.source!r}, "
                              "which trains on another dataset")  # fmt: skip
        base = case.paper.baseline if case.paper else None
        if base is not None and base not in names:
            raise ConfigError(f"{path} case {case.name!r}: paper baseline {base!r} is not a case")
    return recipe
