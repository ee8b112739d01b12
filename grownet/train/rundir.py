"""A run directory is the unit of evidence: config, graph, metrics, checkpoints, provenance.

Layout of ``runs/<name>/``::

    config.json        the resolved TrainConfig
    env.json           provenance: versions, device, threads, git commit, command line
    graph.json         the network (node-link JSON)
    metrics.jsonl      one JSON object per line: train records and test records
    result.json        final status and numbers, written when the run ends
    checkpoint.pt      the latest checkpoint (weights_only-loadable)
    .lock              held (an OS file lock) by the one process writing the run

Readers (reports, resume) get everything from here, never from the process that wrote it.
A run directory has one writer: :meth:`RunDir.lock` takes an exclusive ``flock`` that the
operating system releases when the process ends however it ends, so a SIGKILL leaves no
stale lock. Files are replaced whole (:mod:`grownet.files`); appends are whole lines.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

from grownet.errors import BadValueError, RunDirError
from grownet.files import LockHeld, atomic_write_text, exclusive_lock

LOCK = ".lock"
WORKER_THREADS = "GROWNET_WORKER_THREADS"
"""Set in the worker processes of ``grownet study --workers N`` and ``grownet search --workers
N``: the CPU threads each may use."""

# What makes a directory hold a run that --overwrite would destroy.
RUN_FILES = ("checkpoint.pt", "metrics.jsonl", "result.json", "config.json", "search.json")


def check_run_name(name: str, *, what: str = "--name") -> str:
    """A run name is a plain relative path that stays inside the runs directory.

    >>> check_run_name("lenet/seed0")
    'lenet/seed0'
    >>> check_run_name("../x")
    Traceback (most recent call last):
    ...
    grownet.errors.BadValueError: --name '../x' leaves the runs directory; ...
    """
    parts = PurePath(name).parts
    if PurePath(name).is_absolute() or name.startswith("~"):
        raise BadValueError(
            f"{what} {name!r} is an absolute path; give a name inside the runs directory and "
            "--runs-dir for where runs go"
        )
    if ".." in parts:
        raise BadValueError(
            f"{what} {name!r} leaves the runs directory; use a plain name such as 'lenet-s0'"
        )
    if "\0" in name or "." in name.replace("\\", "/").split("/"):
        raise BadValueError(f"{what} {name!r} is not a plain relative path; use e.g. 'lenet-s0'")
    return name


def run_path(runs_dir: str | Path, name: str, *, what: str = "--name") -> Path:
    """``runs_dir/name``, refused when a symbolic link on the way leads it out of the runs
    directory: a run's writes and ``--overwrite``'s deletions stay where the user pointed
    ``--runs-dir`` (which may itself be a link).

    >>> run_path("runs", "lenet/seed0")
    PosixPath('runs/lenet/seed0')
    """
    path = Path(runs_dir) / check_run_name(name, what=what)
    base, real = Path(runs_dir).resolve(), path.resolve()
    if real != base and base not in real.parents:
        raise RunDirError(
            f"{what} {name!r}: {path} leads to {real}, outside the runs directory {base} (a "
            "symbolic link); pass another --name, or --runs-dir naming where the run should go"
        )
    return path


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
        self._locked = False

    def create(self) -> RunDir:
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path} is a file, not a run directory; pass another --name")
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def file(self, name: str) -> Path:
        return self.path / name

    # ------------------------------------------------------------------ one writer

    @contextlib.contextmanager
    def lock(self) -> Iterator[RunDir]:
        """Hold the run directory's exclusive lock for the block (creating the directory).

        A second writer, in this process or another, gets a :class:`RunDirError` naming the
        holder's PID. The lock file stays; the lock itself dies with the holding process.
        """
        self.create()
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(exclusive_lock(self.file(LOCK)))
            except LockHeld as err:
                raise RunDirError(
                    f"{self.path} is being written by another grownet process (PID "
                    f"{err.holder}); wait for it to finish, or pass another --name"
                ) from None
            self._locked = True
            try:
                yield self
            finally:
                self._locked = False

    def holds_run(self) -> bool:
        """Whether this directory holds (part of) a run that starting afresh would destroy."""
        return any(self.file(name).exists() for name in RUN_FILES)

    def refuse_foreign(self) -> None:
        """Raise :class:`RunDirError` when the directory holds files but no grownet run:
        ``--overwrite`` deletes only what grownet wrote. Call it before :meth:`lock`, whose
        lock file would be the first thing written into a user's folder."""
        others = sorted(e.name for e in self.path.iterdir() if e.name != LOCK) if (
            self.path.is_dir()) else []  # fmt: skip
        if others and not self.holds_run():
            raise RunDirError(
                f"{self.path} is not a grownet run (it holds {', '.join(others[:3])}"
                f"{', ...' if len(others) > 3 else ''}): --overwrite deletes only runs grownet "
                "wrote; pass another --name"
            )

    def clear(self) -> None:
        """Delete everything in the directory but its lock (``--overwrite``: the user named
        this run for deletion). Only while holding the lock."""
        if not self._locked:
            raise RuntimeError("RunDir.clear() needs the run's lock")
        self.refuse_foreign()
        for entry in self.path.iterdir():
            if entry.name == LOCK:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    # ------------------------------------------------------------------ files

    def write_json(self, name: str, data: Any) -> None:
        atomic_write_text(self.file(name), json.dumps(_jsonable(data), indent=1) + "\n")

    def read_json(self, name: str) -> Any:
        return json.loads(self.file(name).read_text())

    def append_metrics(self, record: dict[str, Any]) -> None:
        self.append_jsonl("metrics.jsonl", record)

    def append_jsonl(self, name: str, record: Any) -> None:
        # One write of one whole line: a kill leaves at most a torn last line, which readers
        # skip with a warning and a resumed run drops.
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

    def write_jsonl(self, name: str, records: list[Any]) -> None:
        """Replace ``name`` with ``records``, one per line, in one step."""
        lines = "".join(json.dumps(_jsonable(r)) + "\n" for r in records)
        atomic_write_text(self.file(name), lines)

    def truncate_metrics(self, after_iteration: int) -> None:
        """Drop records past ``after_iteration`` (a resumed run rewrites them identically).
        The file is replaced whole: a kill during the rewrite loses nothing."""
        kept = [r for r in self.read_metrics() if r.get("iteration", 0) <= after_iteration]
        self.write_jsonl("metrics.jsonl", kept)


def capped_workers(
    requested: int, *, left: int | None = None, what: str = ""
) -> tuple[int, str]:
    """How many worker processes ``--workers requested`` starts: no more than this machine's
    CPU cores (more only take turns on them, and a huge number exhausts the processes a user
    may start), nor than ``left`` (``what`` is left: "3 of 5 trials"); with the one line that
    says so when that is fewer than asked ("" otherwise).

    >>> capped_workers(1)
    (1, '')
    """
    cores = os.cpu_count() or 1
    count = min(requested, cores, requested if left is None else left)
    if not 0 < count < requested:
        return count, ""
    why = f"this machine has {cores} CPU cores" if count == cores else f"{what} are left"
    return count, f"--workers {requested}: {why}; starting {count} workers"


def run_threads(threads: int | None, run: Path) -> int | None:
    """CPU threads for a run: at most this worker's share of the cores (workers that each
    take all cores spin against each other: over 100x slower measured here); a run that
    continues a run directory keeps the threads it started with, since they change its
    numbers (the order floating-point sums are taken in)."""
    try:
        return json.loads((run / "config.json").read_text())["threads"]
    except (OSError, ValueError, KeyError):
        pass
    share = os.environ.get(WORKER_THREADS)
    if share is None:
        return threads
    return min(threads, int(share)) if threads else int(share)
