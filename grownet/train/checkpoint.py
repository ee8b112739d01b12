"""Checkpoints that resume exactly and load without executing pickled code.

A checkpoint holds tensors, numbers, strings, lists and dicts only, so ``torch.load`` runs with
``weights_only=True``: loading a file from someone else cannot run arbitrary code. The graph
and config travel as JSON text inside it. What makes resume exact: model and optimizer state,
the iteration (the plan and the learning rate are pure functions of it), the data loader's
position, and the global RNG states that dropout draws from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

FORMAT = "grownet.checkpoint/1"


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
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # a crash mid-save leaves the previous checkpoint intact


def load(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; JSON fields come back decoded."""
    payload = torch.load(Path(path), map_location=map_location, weights_only=True)
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a grownet checkpoint (format {payload.get('format')!r})")
    for key in ("config", "graph", "extra"):
        payload[key] = json.loads(payload[key])
    return payload
