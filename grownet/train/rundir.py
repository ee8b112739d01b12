"""A run directory is the unit of evidence: config, graph, metrics, checkpoints, provenance.

Layout of ``runs/<name>/``::

    config.json        the resolved TrainConfig
    env.json           provenance: versions, device, threads, git commit, command line
    graph.json         the network (node-link JSON)
    metrics.jsonl      one JSON object per line: train records and test records
    result.json        final status and numbers, written when the run ends
    checkpoint.pt      the latest checkpoint (weights_only-loadable)

Readers (reports, resume) get everything from here, never from the process that wrote it.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any


def _jsonable(value: Any) -> Any:
    # NaN and inf are valid results ("the loss diverged"); JSON has no spelling for them.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class RunDir:
    """Reads and writes one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def create(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, data: Any) -> None:
        tmp = self.file(name + ".tmp")
        tmp.write_text(json.dumps(_jsonable(data), indent=1) + "\n")
        tmp.replace(self.file(name))  # atomic: a reader never sees half a file

    def read_json(self, name: str) -> Any:
        return json.loads(self.file(name).read_text())

    def append_metrics(self, record: dict[str, Any]) -> None:
        self.append_jsonl("metrics.jsonl", record)

    def append_jsonl(self, name: str, record: Any) -> None:
        with self.file(name).open("a") as f:
            f.write(json.dumps(_jsonable(record)) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        """All metric records; a corrupt or partial line is skipped with a warning."""
        return self.read_jsonl("metrics.jsonl")

    def read_jsonl(self, name: str) -> list[Any]:
        """One JSON value per line of ``name`` ([] if absent); a corrupt or partial line (a
        run still writing it) is skipped with a warning."""
        path = self.file(name)
        if not path.exists():
            return []
        records = []
        # errors="replace": a torn multi-byte character fails JSON parsing, not decoding.
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                warnings.warn(f"{path}:{number}: skipped a corrupt line", stacklevel=2)
        return records

    def truncate_metrics(self, after_iteration: int) -> None:
        """Drop records past ``after_iteration`` (a resumed run rewrites them identically)."""
        kept = [r for r in self.read_metrics() if r.get("iteration", 0) <= after_iteration]
        with self.file("metrics.jsonl").open("w") as f:
            f.writelines(json.dumps(_jsonable(r)) + "\n" for r in kept)
