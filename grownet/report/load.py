"""Read run directories into plain data for the report; nothing here draws.

The report reads only files, so it can be regenerated at any time and drawn for a run still in
progress. Every file is optional; what a run lacks, the report leaves out:

=====================================  =======================================================
``config.json`` ``env.json``           the trainer's resolved config, provenance, final status
``result.json`` ``dataset.json``       and data source (:mod:`grownet.train.rundir`)
``metrics.jsonl``                      ``train`` and ``test`` records, one JSON object a line
``graph.json`` ``graph_before.json``   networks as node-link JSON (``NetGraph.to_json``)
``graphs/stage_*.json``
``stages.jsonl``                       growth stages (:func:`check_stage`)
``sweeps.json``                        dropout-ratio sweeps (:func:`check_sweeps`)
``bench*.json``                        timing benchmarks (:func:`check_bench`)
``study.db`` ``study.journal``         Optuna studies (SQLite storage, or several workers' journal)
``study_summary.json``                 a finished study's counts and best trials
                                       (:mod:`grownet.study.summary`)
``summary.json``                       a recipe directory's table (:mod:`grownet.reproduce`)
``search.json``                        a growth search's spec and outcome
``search_summary.json``                (:mod:`grownet.search.runner`)
=====================================  =======================================================

A ``test`` record is any evaluation, on the validation split when the run held one out:
:mod:`grownet.report.splits` says which split each run's numbers are on.

A corrupt or partial line of a ``.jsonl`` file (a run still writing it) is skipped with a
warning; so is a file or record that does not fit its schema. Each skip is also kept in
``Run.notes`` so the report can say what it left out.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grownet.errors import BadValueError
from grownet.train.rundir import RunDir

# A directory holding any of these is a run directory.
RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "result.json",
    "graph.json",
    "env.json",
    "stages.jsonl",
    "sweeps.json",
    "study.db",
    "study.journal",
)
SWEEP_KINDS = ("width", "depth", "dropin")
SPLITS = ("val", "test")
_STAGE_GRAPH = re.compile(r"^stage_(\d+)\.json$")


class ReportError(BadValueError):
    """A path the report cannot use; one line, and exit code 2 at the command line."""


class SchemaError(BadValueError):
    """A file or record that does not fit its documented schema."""


@dataclass
class Run:
    """Everything one run directory holds, as plain data."""

    path: Path
    label: str
    config: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    train: list[dict[str, Any]] = field(default_factory=list)
    test: list[dict[str, Any]] = field(default_factory=list)
    graphs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)
    sweeps: list[dict[str, Any]] = field(default_factory=list)
    benches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    study: Path | None = None
    study_summary: dict[str, Any] = field(default_factory=dict)
    """``study_summary.json`` of a finished ``grownet study``: trial counts, best trials."""
    search_summary: str = ""
    """``summary.txt`` of a growth search: the recommendation in words."""
    search: dict[str, Any] = field(default_factory=dict)
    """``search_summary.json`` of a growth search: chosen stage, protocol, reported networks."""
    search_spec: dict[str, Any] = field(default_factory=dict)
    """``search.json``: the search's spec as run (the sweeps' ``max_rise`` ...)."""
    stage_dataset: dict[str, Any] = field(default_factory=dict)
    """A search's ``stages/stage_0/dataset.json``: the split sizes its stages were measured on
    (the search directory itself has no ``dataset.json``)."""
    notes: list[str] = field(default_factory=list)


@dataclass
class Evidence:
    """What a report is drawn from: the runs, and the recipe summaries among the paths."""

    sources: list[Path]
    runs: list[Run]
    summaries: list[tuple[Path, dict[str, Any]]]


# --------------------------------------------------------------------------- checks


def _check_number(where: str, record: dict[str, Any], key: str, *, integer: bool = False) -> None:
    value = record.get(key)
    kind = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kind):
        want = "an integer" if integer else "a number"
        raise SchemaError(f"{where}: {key!r} must be {want}, got {value!r}")


def _check_object(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SchemaError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _check_point(where: str, point: Any) -> None:
    _check_object(where, point)
    _check_number(where, point, "ratio")
    if point.get("status") != "stopped":  # a point stopped early was never measured
        _check_number(where, point, "error")


# --------------------------------------------------------------------------- schemas

STAGE_INTEGERS = ("stage", "depth", "params", "flops")
STAGE_NUMBERS = ("test_accuracy", "wall_time_s")


def check_stage(record: Any, where: str = "stage") -> dict[str, Any]:
    """One growth stage (a line of ``stages.jsonl``), checked; returns it.

    Schema: ``{"stage": int, "depth": int, "params": int, "flops": int, "test_accuracy":
    float, "wall_time_s": float, "split": "val" | "test", "n": int, ...}`` where ``depth``
    counts weighted layers (conv and linear), ``flops`` are forward FLOPs per sample (2 x MACs)
    and ``wall_time_s`` is the time since the search began. ``test_accuracy`` keeps its name
    for older readers but is the accuracy on ``split`` (the split the decisions read) over
    ``n`` samples; records from before the validation protocol lack both (their run's
    ``dataset.json`` says the split: :mod:`grownet.report.splits`).
    Other keys (``action``, ``width`` ...) are kept and shown on hover.

    Example:
        >>> check_stage({"stage": 0, "depth": 3, "params": 5178, "flops": 81920,
        ...              "test_accuracy": 0.9, "wall_time_s": 1.5})["depth"]
        3
        >>> check_stage({"stage": 0, "depth": "3"})
        Traceback (most recent call last):
        ...
        grownet.report.load.SchemaError: stage: 'depth' must be an integer, got '3'
    """
    record = _check_object(where, record)
    for key in STAGE_INTEGERS + STAGE_NUMBERS:
        _check_number(where, record, key, integer=key in STAGE_INTEGERS)
    _check_split(where, record)
    return record


def _check_split(where: str, record: dict[str, Any]) -> None:
    """The optional ``split`` and ``n`` of a record measured on one split."""
    if "split" in record and record["split"] not in SPLITS:
        raise SchemaError(f"{where}: 'split' must be one of {SPLITS}, got {record['split']!r}")
    if "n" in record:
        _check_number(where, record, "n", integer=True)


def check_sweeps(data: Any, where: str = "sweeps.json") -> list[dict[str, Any]]:
    """The sweeps of a ``sweeps.json`` document, checked.

    Schema::

        {"sweeps": [{"kind": "width" | "depth" | "dropin",
                     "layer": str | null,            # the thinned layer; null: whole net
                     "points": [{"ratio": float, "error": float}, ...],
                                 # or {"ratio", "error": null, "status": "stopped"}
                     "knee": {"ratio": float, "error": float} | null,
                     "estimate": {"ratio": float,     # where the estimate was read off
                                  "size": int | null, # minimum channels or weighted layers
                                  "full_size": int | null} | null,
                     "verification": {"full_accuracy": float, "reduced_accuracy": float,
                                      "passed": bool,
                                      "split": "val" | "test", "n": int,
                                      "margin_samples": float} | null,
                     "interval": {"low_ratio": float, "high_ratio": float,
                                  "level": float, ...} | null}]}

    ``error`` is an error rate (1 - accuracy) on the split the decisions read: the
    verification's ``split``, over ``n`` samples; files from before the validation protocol
    lack ``split``, ``n``, ``margin_samples`` and ``interval`` (:mod:`grownet.report.splits`
    says their split).
    ``interval`` is the knee's bootstrap interval in the swept ratios (``low_ratio``: the
    smaller network's end) at coverage ``level``. Other keys are kept.

    Example:
        >>> doc = {"sweeps": [{"kind": "width", "layer": "conv1", "knee": None,
        ...        "estimate": None, "verification": None,
        ...        "points": [{"ratio": 0.9, "error": 0.02}, {"ratio": 0.1, "error": 0.4}]}]}
        >>> [s["kind"] for s in check_sweeps(doc)]
        ['width']
    """
    sweeps = _check_object(where, data).get("sweeps")
    if not isinstance(sweeps, list):
        raise SchemaError(f"{where}: 'sweeps' must be a list, got {sweeps!r}")
    for i, sweep in enumerate(sweeps):
        _check_sweep(f"{where} sweep {i}", sweep)
    return sweeps


def _check_sweep(at: str, sweep: Any) -> None:
    _check_object(at, sweep)
    if (kind := sweep.get("kind")) not in SWEEP_KINDS:
        raise SchemaError(f"{at}: 'kind' must be one of {SWEEP_KINDS}, got {kind!r}")
    if not isinstance(layer := sweep.get("layer"), str | None):
        raise SchemaError(f"{at}: 'layer' must be a string or null, got {layer!r}")
    points = sweep.get("points")
    if not isinstance(points, list) or not points:
        raise SchemaError(f"{at}: 'points' must be a non-empty list, got {points!r}")
    for j, point in enumerate(points):
        _check_point(f"{at} point {j}", point)
    if sweep.get("knee") is not None:
        _check_point(f"{at} knee", sweep["knee"])
    if (estimate := sweep.get("estimate")) is not None:
        _check_object(f"{at} estimate", estimate)
        _check_number(f"{at} estimate", estimate, "ratio")
        for key in ("size", "full_size"):
            if estimate.get(key) is not None:
                _check_number(f"{at} estimate", estimate, key, integer=True)
    if (check := sweep.get("verification")) is not None:
        where = f"{at} verification"
        _check_object(where, check)
        for key in ("full_accuracy", "reduced_accuracy"):
            _check_number(where, check, key)
        if not isinstance(passed := check.get("passed"), bool):
            raise SchemaError(f"{where}: 'passed' must be true or false, got {passed!r}")
        _check_split(where, check)
    if (interval := sweep.get("interval")) is not None:
        _check_object(f"{at} interval", interval)
        for key in ("low_ratio", "high_ratio", "level"):
            _check_number(f"{at} interval", interval, key)


BENCH_ROW_KEYS = ("ratio", "forward_ms", "backward_ms", "total_ms", "saving")


def check_bench(data: Any, where: str = "bench.json") -> dict[str, Any]:
    """A ``bench*.json`` document, checked; returns it.

    Schema (what ``grownet bench depth-dropout`` / ``stochastic-depth`` write)::

        {"benchmark": "depth_dropout" | "stochastic_depth" | str,
         "model": str,
         "rows": [{"ratio": float, "mode": "skip" | "mask" | "-",   # "-": the baseline
                   "forward_ms": float, "backward_ms": float, "total_ms": float,
                   "saving": float,                 # 1 - total / baseline total
                   "theory_saving": float | null,   # the expected saving, from MACs
                   "paper_theory_saving": float | null,  # the paper's own formula
                   "paper_theory_mac_saving": float | null,  # optional: it, by unit MACs
                   "variant": str, ...}],
         "findings": [str, ...],                    # optional: one line per finding
         "provenance": {...}}                       # env.json-like: device, versions

    A benchmark without ``rows`` (``grownet bench executor``) is valid: the report lists its
    numbers in a table.

    Example:
        >>> check_bench({"benchmark": "depth_dropout", "model": "resnet56", "rows": [
        ...     {"ratio": 0.5, "mode": "skip", "forward_ms": 10, "backward_ms": 20,
        ...      "total_ms": 30, "saving": 0.3, "theory_saving": 0.346}]})["model"]
        'resnet56'
    """
    data = _check_object(where, data)
    if not isinstance(data.get("benchmark"), str):
        raise SchemaError(f"{where}: 'benchmark' must be a string, got {data.get('benchmark')!r}")
    found = data.get("findings", [])
    if not isinstance(found, list) or not all(isinstance(line, str) for line in found):
        raise SchemaError(f"{where}: 'findings' must be a list of strings, got {found!r}")
    rows = data.get("rows")
    if rows is None:
        return data
    if not isinstance(rows, list):
        raise SchemaError(f"{where}: 'rows' must be a list, got {rows!r}")
    for i, row in enumerate(rows):
        at = f"{where} row {i}"
        _check_object(at, row)
        for key in BENCH_ROW_KEYS:
            _check_number(at, row, key)
        # Optional: files written before the MAC-weighted column lack it and stay readable.
        for key in ("theory_saving", "paper_theory_saving", "paper_theory_mac_saving"):
            if row.get(key) is not None:
                _check_number(at, row, key)
        if not isinstance(row.get("mode"), str):
            raise SchemaError(f"{at}: 'mode' must be a string, got {row.get('mode')!r}")
    return data


# --------------------------------------------------------------------------- reading


def number(value: Any) -> float | None:
    """A metric value as a finite float, else None (the trainer writes NaN as ``"nan"``).

    Example:
        >>> number(0.5), number("nan"), number(None)
        (0.5, None, None)
    """
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _skip(run: Run, message: str) -> None:
    warnings.warn(message, stacklevel=3)
    run.notes.append(message)


def _json_file(run: Run, path: Path) -> Any:
    """A JSON file's content, or None (with a note) when it is missing or unreadable."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(errors="replace"))
    except (OSError, json.JSONDecodeError) as err:
        _skip(run, f"{path}: skipped, not readable JSON ({err})")
        return None


def _object_file(run: Run, path: Path) -> dict[str, Any]:
    data = _json_file(run, path)
    if data is not None and not isinstance(data, dict):
        _skip(run, f"{path}: skipped, expected a JSON object, got {type(data).__name__}")
        return {}
    return data or {}


def _jsonl(run: Run, name: str) -> list[Any]:
    """Lines of a .jsonl file by :meth:`RunDir.read_jsonl`, its warnings kept as notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = RunDir(run.path).read_jsonl(name)
    for w in caught:
        _skip(run, str(w.message))
    return records


def _read_metrics(run: Run) -> None:
    # A run grown from another continues its schedule: drawn from where that one ended.
    offset = (run.config or {}).get("schedule_offset", 0)
    offset = offset if isinstance(offset, int) and not isinstance(offset, bool) else 0
    for i, record in enumerate(_jsonl(run, "metrics.jsonl"), 1):
        ok = isinstance(record, dict) and isinstance(record.get("iteration"), int)
        if ok and record.get("kind") in ("train", "test"):
            if offset:
                record = {**record, "iteration": record["iteration"] + offset}
            (run.train if record["kind"] == "train" else run.test).append(record)
        else:
            _skip(run, f"{run.path / 'metrics.jsonl'}: skipped record {i}: {record!r:.80}")


def _read_stages(run: Run) -> None:
    for i, record in enumerate(_jsonl(run, "stages.jsonl"), 1):
        try:
            run.stages.append(check_stage(record, f"{run.path / 'stages.jsonl'} record {i}"))
        except SchemaError as err:
            _skip(run, f"skipped: {err}")


def _graph_files(path: Path) -> list[Path]:
    """graph_before.json, graphs/stage_*.json by stage number, then graph.json."""
    staged = sorted(
        (int(m.group(1)), p)
        for p in (path / "graphs").glob("stage_*.json")
        if (m := _STAGE_GRAPH.match(p.name))
    )
    files = [path / "graph_before.json", *(p for _, p in staged), path / "graph.json"]
    return [p for p in files if p.exists()]


def load_run(path: str | Path, *, label: str | None = None) -> Run:
    """Read one run directory; ``label`` names it in legends (default: its directory name).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "metrics.jsonl").write_text(
        ...     '{"kind": "test", "iteration": 20, "loss": 0.5, "accuracy": 0.9}\\n')
        >>> run = load_run(d, label="demo")
        >>> [(r["iteration"], r["accuracy"]) for r in run.test]
        [(20, 0.9)]
    """
    path = Path(path)
    run = Run(path=path, label=label or path.name)
    for name in ("config", "env", "result", "dataset"):
        setattr(run, name, _object_file(run, path / f"{name}.json"))
    _read_metrics(run)
    _read_stages(run)
    for file in _graph_files(path):
        data = _object_file(run, file)
        if data:
            run.graphs.append((str(file.relative_to(path)), data))
    if (sweeps := _json_file(run, path / "sweeps.json")) is not None:
        try:
            run.sweeps = check_sweeps(sweeps, str(path / "sweeps.json"))
        except SchemaError as err:
            _skip(run, f"skipped: {err}")
    for file in sorted(path.glob("bench*.json")):
        if (bench := _json_file(run, file)) is not None:
            try:
                run.benches.append((file.name, check_bench(bench, str(file))))
            except SchemaError as err:
                _skip(run, f"skipped: {err}")
    for name in ("study.db", "study.journal"):  # one worker, or several
        if (path / name).exists():
            run.study = path / name
            break
    if run.study is not None:
        run.study_summary = _object_file(run, path / "study_summary.json")
    run.search = _object_file(run, path / "search_summary.json")
    run.search_spec = _object_file(run, path / "search.json")
    run.stage_dataset = _object_file(run, path / "stages" / "stage_0" / "dataset.json")
    if run.search and (path / "summary.txt").exists():
        run.search_summary = (path / "summary.txt").read_text(errors="replace")
    return run


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and (
        any((path / name).exists() for name in RUN_FILES) or any(path.glob("bench*.json"))
    )


def _summary(path: Path) -> dict[str, Any] | None:
    """A recipe directory's ``summary.json`` (see :func:`grownet.reproduce.write_summary`)."""
    file = path / "summary.json"
    if not file.exists():
        return None
    try:
        summary = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ReportError(f"{file} is not readable JSON: {err}") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("cases"), list):
        raise ReportError(f"{file} is not a recipe summary: expected an object with 'cases'")
    return summary


def _members(path: Path, summary: dict[str, Any] | None) -> list[Path]:
    """The run directories a path stands for: itself, and the runs directly inside it."""
    children = sorted(p for p in path.iterdir() if is_run_dir(p))
    if (path / "search.json").exists():
        # A search's model/ (graph, weights and how they were chosen) is its answer, tabled in
        # its section, not a training run: its config.json is no trainer's.
        children = [p for p in children if p.name != "model"]
    if summary:  # a recipe's cases in the recipe's order, then anything else
        order = {c.get("case"): i for i, c in enumerate(summary["cases"]) if isinstance(c, dict)}
        children.sort(key=lambda p: order.get(p.name, len(order)))
    return ([path] if is_run_dir(path) else []) + children


def _labels(paths: Sequence[Path]) -> list[str]:
    """The shortest trailing parts of each path that tell the runs apart."""
    parts = [p.resolve().parts for p in paths]
    for n in range(1, max(map(len, parts), default=1) + 1):
        labels = ["/".join(p[-n:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def load_evidence(paths: Sequence[str | Path]) -> Evidence:
    """Read run directories and recipe directories (``runs/<recipe>/``: every case in it).

    Raises :class:`ReportError` for a path that is neither.
    """
    sources = [Path(p) for p in paths]
    if not sources:
        raise ReportError("no run directory given")
    members: dict[Path, Path] = {}  # resolved -> as given: a run named twice is drawn once
    summaries = []
    for source in sources:
        if not source.is_dir():
            why = "it is a file" if source.exists() else "no such directory"
            raise ReportError(f"{source} is not a run directory: {why}")
        summary = _summary(source)
        runs = _members(source, summary)
        if not runs and summary is None:
            raise ReportError(
                f"{source} is not a run directory: it holds none of {', '.join(RUN_FILES)}, "
                "bench*.json or summary.json, and no run directory directly inside"
            )
        for run in runs:
            members.setdefault(run.resolve(), run)
        if summary is not None:
            summaries.append((source, summary))
    paths = list(members.values())
    runs = [load_run(p, label=label) for p, label in zip(paths, _labels(paths), strict=True)]
    return Evidence(sources=sources, runs=runs, summaries=summaries)
