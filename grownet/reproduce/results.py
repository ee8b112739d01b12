"""A recipe's results: one row per case, rebuilt from the run directories, as a table.

Cases may be run by separate invocations (``--case``, other machines sharing ``--storage``);
the summary is always rebuilt from ``runs/<recipe>/<case>/`` themselves, so it shows every
case that has finished wherever it ran, and every case that has not, with why.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from grownet.files import atomic_write_text
from grownet.reproduce.data import missing_data
from grownet.reproduce.recipe import Case, PaperValue, Recipe
from grownet.reproduce.scale import QUICK_FACTOR, QUICK_LABEL, run_folder
from grownet.reproduce.verdict import Comparison, compare
from grownet.train.config import TrainConfig
from grownet.train.rundir import RunDir
from grownet.train.verdict import CONVERGED, INTERRUPTED
from grownet.zoo import options as builder_options

UNFINISHED = "not finished"  # the status of a case whose run has no result yet


@dataclass
class CaseResult:
    """One case: what ran (or why not), and the paper-versus-measured comparison."""

    case: str
    network: str
    dataset: str
    dropin_length: int | None
    status: str
    final_test_accuracy: float | None
    iterations: int
    max_iter: int
    wall_time_s: float
    run_dir: str
    paper_value: dict[str, Any] | None
    measured_value: float | bool | None
    paper: str
    measured: str
    difference: str
    verdict: str
    scale: str = "full"
    grown_from: str | None = None
    """How a grown case started: its source case and how it grew (None: from scratch)."""

    @property
    def converged(self) -> bool:
        return self.status == CONVERGED

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.scale == "quick":
            data["note"] = QUICK_LABEL
        return data


def network_label(config: TrainConfig) -> str:
    """``LeNet(10)+DropIn``, or the model and its options.

    >>> network_label(TrainConfig(model="lenet2n", model_options={"n": 15}))
    'LeNet(30)+DropIn'
    >>> network_label(TrainConfig(model="lenet2n", model_options={"n": 1}))
    'LeNet'
    """
    opts = config.model_options
    if config.model == "lenet2n":
        n = opts.get("n", 1)
        if n == 1:
            return "LeNet"
        return f"LeNet({2 * n})" + ("+DropIn" if opts.get("dropin", True) else "")
    return config.model + "".join(f" {k}={v}" for k, v in sorted(opts.items()))


def dropin_length(config: TrainConfig) -> int | None:
    """The gradual DropIn length the case's network mixes its new layers in over, if any."""
    try:
        opts = {**builder_options(config.model), **config.model_options}
    except ValueError:
        return None
    # a network with a DropIn switch (dropin) or a count of DropIn-joined blocks (dropin_blocks)
    if "dropin_length" not in opts or not opts.get("dropin", opts.get("dropin_blocks", True)):
        return None
    return opts["dropin_length"]


def grown_label(case: Case) -> str | None:
    """How a grown case starts, in a few words (None for a case trained from scratch)."""
    grow = case.grow
    if grow is None:
        return None
    if grow.widen_init is None:
        return f"{grow.source}, new layers: {grow.new_layers}"
    if grow.widen_length == 0:
        return f"{grow.source}, widened at once ({grow.widen_init})"
    return f"{grow.source}, widened over {grow.widen_length:,} ({grow.widen_init})"


def _evaluations(run: RunDir, key: str) -> list[float]:
    return [r[key] for r in run.read_metrics()
            if r.get("kind") == "test" and isinstance(r.get(key), int | float)]  # fmt: skip


def _time_per_iter(result: dict[str, Any]) -> float | None:
    iterations = result.get("iterations") or 0
    return result["wall_time_s"] / iterations if iterations else None


def measure(
    paper: PaperValue | None,
    run: RunDir,
    result: dict[str, Any],
    baseline: dict[str, Any] | None,
    *,
    metric: str = "accuracy",
) -> float | bool | None:
    """The case's value in the paper's metric (percent, a loss in nats, or converged yes/no),
    or without a paper value in the recipe's ``metric``."""
    if paper is not None and paper.metric == "converged":
        return result["status"] == CONVERGED
    if paper is not None and paper.metric == "time_saving":
        mine, base = _time_per_iter(result), baseline and _time_per_iter(baseline)
        return None if not mine or not base else 100.0 * (1.0 - mine / base)
    last = paper.average_last if paper is not None else 1
    if (paper.metric if paper else metric) == "loss":  # nats per token, as evaluated
        losses = _evaluations(run, "loss")[-last:]
        return statistics.fmean(losses) if losses else result.get("final_test_loss")
    accuracy = result.get("final_test_accuracy")
    if last > 1:
        accuracies = _evaluations(run, "accuracy")[-last:]
        accuracy = statistics.fmean(accuracies) if accuracies else accuracy
    if accuracy is None:
        return None
    if paper is not None and paper.metric == "test_error":
        return 100.0 * (1.0 - accuracy)
    return 100.0 * accuracy


def _row(
    case: Case, config: TrainConfig, result: dict[str, Any] | None, comparison: Comparison,
    measured: float | bool | None, run: Path, scale: str,
) -> CaseResult:  # fmt: skip
    result = result or {}
    return CaseResult(
        case=case.name,
        network=network_label(config),
        dataset=config.dataset,
        dropin_length=dropin_length(config),
        status=result.get("status", "not run"),
        final_test_accuracy=result.get("final_test_accuracy"),
        iterations=result.get("iterations", 0),
        max_iter=config.max_iter,
        wall_time_s=result.get("wall_time_s", 0.0),
        run_dir=str(run),
        paper_value=None if case.paper is None else asdict(case.paper),
        measured_value=measured,
        paper=comparison.paper,
        measured=comparison.measured,
        difference=comparison.difference,
        verdict=comparison.verdict,
        scale=scale,
        grown_from=grown_label(case),
    )


def progress(run: RunDir) -> dict[str, Any]:
    """A run without ``result.json``: the iteration and training time its metrics reached."""
    records = run.read_metrics()
    return {
        "status": UNFINISHED,
        "iterations": max((r.get("iteration", 0) for r in records), default=0),
        "wall_time_s": max((r.get("wall_time_s", 0.0) for r in records), default=0.0),
    }


def collect_results(
    recipe: Recipe, runs_dir: str | Path, *, scale: str = "full", data_dir: str | None = None
) -> list[CaseResult]:
    """Every case of ``recipe`` in recipe order: measured where its run has finished."""
    folder = Path(runs_dir) / run_folder(recipe.name, scale)
    results: dict[str, dict[str, Any]] = {}
    for case in recipe.cases:
        run = RunDir(folder / case.name)
        if run.file("result.json").exists():
            results[case.name] = run.read_json("result.json")
    rows = []
    for case in recipe.cases:
        run = RunDir(folder / case.name)
        result = results.get(case.name)
        config = recipe.config(case, scale=scale)
        if result is not None and run.file("config.json").exists():
            config = TrainConfig.from_dict(run.read_json("config.json"))
        missing, unfinished, measured = None, None, None
        if result is None and run.holds_run():
            result = progress(run)  # a run still going, or killed: how far it got
        if result is None or result.get("status") in (INTERRUPTED, UNFINISHED):
            if result is not None:
                got = result["iterations"]
                unfinished = f"not finished: iteration {got:,} of {config.max_iter:,}"
            elif missing_data(config.dataset, data_dir):
                missing = config.dataset
        else:
            base = case.paper.baseline if case.paper else None
            measured = measure(case.paper, run, result, results.get(base) if base else None,
                               metric=recipe.metric)  # fmt: skip
            if measured is None and base:
                unfinished = f"not run: baseline {base} not finished"
        comparison = compare(case.paper, measured, missing=missing, unfinished=unfinished,
                             quick=scale == "quick", metric=recipe.metric)  # fmt: skip
        rows.append(_row(case, config, result, comparison, measured, run.path, scale))
    return rows


def _aligned(head: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            f"{c:>{w}}" if i in right else f"{c:<{w}}"
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(head), "-" * len(line(head)), *(line(r) for r in rows)]


def format_table(rows: Sequence[CaseResult]) -> str:
    """The console's paper-versus-measured table (a quick run says so beside each number)."""
    head = ["case", "network", "DropIn length", "iterations", "paper", "measured", "difference",
            "verdict", "wall time"]  # fmt: skip
    body = [
        [r.case, r.network, "-" if r.dropin_length is None else f"{r.dropin_length:,d}",
         f"{r.iterations:,d} / {r.max_iter:,d}", r.paper, r.measured, r.difference, r.verdict,
         f"{r.wall_time_s:.0f} s"]
        for r in rows
    ]  # fmt: skip
    if any(r.grown_from for r in rows):  # the iterations are the case's own, after growing
        head.insert(1, "grown from")
        for row, r in zip(body, rows, strict=True):
            row.insert(1, r.grown_from or "-")
    right = {head.index(c) for c in ("DropIn length", "iterations", "wall time")}
    lines = _aligned(head, body, right=right)
    if any(r.scale == "quick" for r in rows):
        lines.insert(0, f"scale quick: every iteration count / {QUICK_FACTOR}; {QUICK_LABEL}")
    return "\n".join(lines)


def write_summary(
    recipe: Recipe, runs_dir: str | Path, *, scale: str = "full", data_dir: str | None = None
) -> tuple[Path, list[CaseResult]]:
    """Rebuild the recipe's summary (JSON and text table) from all its case runs."""
    rows = collect_results(recipe, runs_dir, scale=scale, data_dir=data_dir)
    out = RunDir(Path(runs_dir) / run_folder(recipe.name, scale)).create()
    summary: dict[str, Any] = {
        "recipe": str(recipe.path),
        "paper": recipe.paper,
        "notes": recipe.notes,
        "scale": scale,
        "cases": [r.to_dict() for r in rows],
    }
    if scale == "quick":
        summary["scale_note"] = f"every iteration count / {QUICK_FACTOR}; {QUICK_LABEL}"
    out.write_json("summary.json", summary)
    atomic_write_text(out.file("summary.txt"), format_table(rows) + "\n")
    return out.path, rows
