"""Paper recipes: run a set of training cases end to end and compare with the paper.

A recipe is a TOML file in ``recipes/``: shared solver settings under ``[train]``, the paper's
claim under ``paper``/``notes``, and one ``[[case]]`` table per network with its own settings
and the paper's expected outcome (``expect``, e.g. ``"converged"``). Each case is a normal
training run in ``runs/<recipe>/<case>/``; the summary table is written beside them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grownet.files import atomic_write_text
from grownet.train.config import ConfigError, TrainConfig
from grownet.train.rundir import RunDir


@dataclass
class Case:
    name: str
    settings: dict[str, Any]
    expect: str | None = None
    paper_accuracy: float | None = None


@dataclass
class Recipe:
    name: str
    path: Path
    paper: str
    notes: str
    train: dict[str, Any]
    cases: list[Case] = field(default_factory=list)

    def config(self, case: Case, **overrides: Any) -> TrainConfig:
        """The case's run config: recipe defaults, then the case, then ``overrides``
        (``model_options`` merge key by key at each level)."""
        layers = (self.train, case.settings, overrides)
        settings = {k: v for layer in layers for k, v in layer.items()}
        settings["model_options"] = {
            k: v for layer in layers for k, v in layer.get("model_options", {}).items()
        }
        settings.setdefault("name", f"{self.name}/{case.name}")
        return TrainConfig.from_dict(settings, source=f"{self.path} case {case.name!r}")


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        from grownet.shipped import shipped_names

        raise ConfigError(
            f"recipe {path} does not exist; the shipped recipes, which `grownet reproduce NAME` "
            f"runs, are: {', '.join(shipped_names('recipe'))}"
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None
    cases = []
    for i, item in enumerate(data.get("case", [])):
        item = dict(item)
        if "name" not in item:
            raise ConfigError(f"{path}: case {i + 1} has no name")
        cases.append(
            Case(
                name=item.pop("name"),
                expect=item.pop("expect", None),
                paper_accuracy=item.pop("paper_accuracy", None),
                settings=item,
            )
        )
    if not cases:
        raise ConfigError(f"{path}: a recipe needs at least one [[case]] table")
    recipe = Recipe(
        name=path.stem,
        path=path,
        paper=data.get("paper", ""),
        notes=data.get("notes", ""),
        train=data.get("train", {}),
        cases=cases,
    )
    for case in cases:
        recipe.config(case)  # fail now, naming the case, rather than hours into the run
    return recipe


@dataclass
class CaseResult:
    case: str
    network: str
    dropin_length: int | None
    status: str
    final_test_accuracy: float | None
    iterations: int
    wall_time_s: float
    expect: str | None
    run_dir: str

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    @property
    def matches_paper(self) -> bool | None:
        """A diverged run did not converge either: it matches a paper that says so."""
        if self.expect is None:
            return None
        failed = ("did not converge", "diverged")
        return self.status == self.expect or (self.expect in failed and self.status in failed)


def _network_label(config: TrainConfig) -> str:
    opts = config.model_options
    if config.model == "lenet2n":
        label = f"LeNet({2 * opts.get('n', 1)})"
        return label + ("+DropIn" if opts.get("dropin", True) else "")
    return config.model + "".join(f" {k}={v}" for k, v in sorted(opts.items()))


def _case_result(case: Case, config: TrainConfig, result: dict[str, Any]) -> CaseResult:
    dropin = config.model == "lenet2n" and config.model_options.get("dropin", True)
    return CaseResult(
        case=case.name,
        network=_network_label(config),
        dropin_length=config.model_options.get("dropin_length", 2500) if dropin else None,
        status=result["status"],
        final_test_accuracy=result["final_test_accuracy"],
        iterations=result["iterations"],
        wall_time_s=result["wall_time_s"],
        expect=case.expect,
        run_dir=result["run_dir"],
    )


def plan_recipe(
    recipe: Recipe,
    *,
    cases: Sequence[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> list[tuple[Case, TrainConfig]]:
    """Every (selected) case with its checked config: all mistakes surface before any run."""
    chosen = recipe.cases
    if cases:
        known = {c.name for c in recipe.cases}
        unknown = [c for c in cases if c not in known]
        if unknown:
            raise ConfigError(
                f"recipe {recipe.name} has no case {unknown[0]!r}; cases: {sorted(known)}"
            )
        chosen = [c for c in recipe.cases if c.name in cases]
    return [(case, recipe.config(case, **(overrides or {}))) for case in chosen]


def run_recipe(
    recipe: Recipe,
    *,
    cases: Sequence[str] | None = None,
    overrides: dict[str, Any] | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
) -> list[CaseResult]:
    """Train every (selected) case in order; ``on_result`` sees each as it finishes."""
    from grownet.report.callback import WriteReport
    from grownet.train.trainer import Trainer

    results = []
    for case, config in plan_recipe(recipe, cases=cases, overrides=overrides):
        trainer = Trainer(config, callbacks=[WriteReport()])
        row = _case_result(case, config, trainer.run().__dict__)
        results.append(row)
        if on_result:
            on_result(row)
    return results


def collect_results(recipe: Recipe, runs_dir: str | Path) -> list[CaseResult]:
    """Every case of ``recipe`` that has finished under ``runs_dir``, in recipe order.

    Cases may be run by separate invocations (``--case``, in parallel or on other machines);
    the summary is always rebuilt from the run directories themselves.
    """
    rows = []
    for case in recipe.cases:
        run = RunDir(Path(runs_dir) / recipe.name / case.name)
        if run.file("result.json").exists() and run.file("config.json").exists():
            config = TrainConfig.from_dict(run.read_json("config.json"))
            rows.append(_case_result(case, config, run.read_json("result.json")))
    return rows


def format_table(rows: Sequence[CaseResult]) -> str:
    head = (
        f"{'network':18s} {'DropIn length':>13s} {'iterations':>10s} {'test acc':>9s} "
        f"{'converged':>9s} {'paper':>16s} {'wall time':>10s}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        acc = "n/a" if r.final_test_accuracy is None else f"{100 * r.final_test_accuracy:.2f}%"
        length = "-" if r.dropin_length is None else f"{r.dropin_length:,d}"
        paper = r.expect or "-"
        lines.append(
            f"{r.network:18s} {length:>13s} {r.iterations:>10,d} {acc:>9s} "
            f"{'yes' if r.converged else 'no':>9s} {paper:>16s} {r.wall_time_s:>9.0f}s"
        )
    return "\n".join(lines)


def write_summary(recipe: Recipe, runs_dir: str | Path) -> tuple[Path, list[CaseResult]]:
    """Rebuild the recipe's summary (JSON and text table) from all finished case runs."""
    rows = collect_results(recipe, runs_dir)
    out = RunDir(Path(runs_dir) / recipe.name).create()
    out.write_json(
        "summary.json",
        {
            "recipe": str(recipe.path),
            "paper": recipe.paper,
            "notes": recipe.notes,
            "cases": [r.__dict__ | {"matches_paper": r.matches_paper} for r in rows],
        },
    )
    atomic_write_text(out.file("summary.txt"), format_table(rows) + "\n")
    return out.path, rows
