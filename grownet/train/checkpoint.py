"""Checkpoints that resume exactly and load without executing pickled code.

A checkpoint holds tensors, numbers, strings, lists and dicts only, so ``torch.load`` runs with
``weights_only=True``: loading a file from someone else cannot run arbitrary code. The graph
and config travel as JSON text inside it. What makes resume exact: model and optimizer state,
the iteration (the plan and the learning rate are pure functions of it), the data loader's
position, and the global RNG states that dropout draws from.

Any file that is not one (truncated, empty, text, another program's torch file, a pickle with
a payload) raises one ``DataFileError`` line; ``save`` never leaves a torn file behind.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from grownet.errors import DataFileError
from grownet.files import atomic_save

FORMAT = "grownet.checkpoint/1"
FIX = "give a checkpoint.pt written by grownet, or start the run afresh"

# What torch.load raises on a file it cannot read safely (a checkpoint or any other weights
# file): EOFError (empty or cut short), RuntimeError (a damaged zip), BadZipFile,
# UnpicklingError (foreign globals under weights_only, or not a pickle),
# KeyError/ValueError/TypeError/IndexError (garbled legacy data).
UNREADABLE = (
    EOFError,
    RuntimeError,
    zipfile.BadZipFile,
    pickle.UnpicklingError,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    AttributeError,
    struct.error,
)


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    iteration: int,
    loader_state: dict[str, int],
    config: dict[str, Any],
    graph: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    path = Path(path)
    payload = {
        "format": FORMAT,
        "iteration": iteration,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "loader": dict(loader_state),
        "rng": rng_states(),
        "config": json.dumps(config),
        "graph": json.dumps(graph),
        "extra": json.dumps(extra or {}),
    }
    # A unique temporary file in the same directory, fsync'ed, then renamed over ``path``: a
    # crash leaves the previous checkpoint or the new one, never a torn file.
    atomic_save(path, lambda f: torch.save(payload, f))


def remove_torn_saves(path: str | Path) -> list[Path]:
    """Delete the temporary files that saves of ``path`` killed mid-write left beside it (a
    kill between the temporary file and its rename); returns them. Only the run's one writer
    calls this (on resume, holding the run's lock): no save of ``path`` is then under way.
    Only names :func:`grownet.files.atomic_save` gives (``tempfile.mkstemp``'s eight
    characters between ``.checkpoint.pt.`` and ``.tmp``) match: nothing else is touched.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for name in (".checkpoint.pt.k2_x9abq.tmp", ".checkpoint.pt.mine.tmp", "checkpoint.pt"):
    ...     _ = (d / name).write_bytes(b"")
    >>> [p.name for p in remove_torn_saves(d / "checkpoint.pt")]
    ['.checkpoint.pt.k2_x9abq.tmp']
    >>> sorted(p.name for p in d.iterdir())
    ['.checkpoint.pt.mine.tmp', 'checkpoint.pt']
    """
    path = Path(path)
    torn = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    removed = [p for p in path.parent.glob(f".{path.name}.*.tmp") if torn.fullmatch(p.name)]
    for stale in removed:
        stale.unlink(missing_ok=True)
    return removed


def first_line(err: BaseException) -> str:
    """A short reason from a torch error (torch.load's messages run to many lines of advice)."""
    text = str(err)
    # weights_only refusals bury the cause ("Unsupported global: GLOBAL posix.system") deep down
    text = text.split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:120] if lines else type(err).__name__


def read_torch_file(path: str | Path, *, what: str, fix: str,
                    map_location: str | torch.device = "cpu") -> Any:  # fmt: skip
    """``torch.load(path, weights_only=True)``: nothing in the file runs, and a file that
    cannot be read (empty, cut short, another program's pickle) is one ``DataFileError`` line
    naming it: "PATH: not a WHAT (why); FIX"."""
    try:
        with warnings.catch_warnings():
            # A foreign pickle's protocol draws a warning before the refusal: noise, not news.
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            return torch.load(Path(path), map_location=map_location, weights_only=True)
    except OSError as err:
        if err.filename is not None:
            raise  # the file system's own mistake (no such file, no permission): its message
        # A zip cut short makes torch seek past its end: "[Errno 22] Invalid argument".
        reason = f"cut short or damaged: {err.strerror or type(err).__name__}"
    except UNREADABLE as err:
        name = type(err).__name__
        name = f"{type(err).__module__}.{name}" if name == "error" else name  # struct.error
        reason = f"{name}: {first_line(err)}"
    raise DataFileError(path, f"not a {what} ({reason}); {fix}")


def load(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; JSON fields come back decoded.

    A file that is not a grownet checkpoint raises ``DataFileError``; nothing in it runs.
    """
    payload = read_torch_file(path, what="grownet checkpoint", fix=FIX, map_location=map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise DataFileError(path, f"not a grownet checkpoint (format {found!r}); {FIX}")
    for key in ("config", "graph", "extra"):
        try:
            payload[key] = json.loads(payload[key])
        except (KeyError, TypeError, json.JSONDecodeError):
            raise DataFileError(path, f"not a grownet checkpoint (bad {key!r}); {FIX}") from None
    return payload
