"""Training compute: what a run cost in floating-point operations, whatever machine ran it.

Seconds depend on the machine and its load; FLOPs do not, so comparisons of cost (a growth
search against the brute-force study it replaces) are made in FLOPs, seconds beside them.
A training iteration costs its forward pass over the batch and a backward pass of about
twice that (gradients with respect to the inputs and to the weights, each about one forward),
the convention of Kaplan et al. (2020) and of MLPerf's model-FLOPs counts. The network is
counted at the size it was built: layers a step skips (a closed depth-dropout gate, a DropIn
still at q = 1) and channels a width dropout zeroes are counted as run, so the figure is an
upper bound on the arithmetic done. Evaluation passes are not counted (both sides of a
comparison evaluate alike); a one-shot sweep's forward-only recalibration passes are added
by the sweep itself.

>>> from grownet.zoo import build
>>> net = build("lenet")
>>> step_flops(net, batch_size=64) == 3 * 2 * net.macs() * 64
True
"""

from __future__ import annotations

import json
from pathlib import Path

from grownet.graph import GraphError, NetGraph

TRAIN_PASSES = 3
"""A training step's cost in forward passes: the forward and a backward of about two."""


def forward_flops(graph: NetGraph, samples: int) -> int:
    """FLOPs (2 x multiply-accumulates) of ``samples`` forward passes through ``graph``."""
    if samples < 0:
        raise ValueError(f"samples must be >= 0, got {samples!r}")
    return 2 * graph.macs() * samples


def step_flops(graph: NetGraph, *, batch_size: int) -> int:
    """FLOPs of one training iteration of ``graph`` on ``batch_size`` samples."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    return TRAIN_PASSES * forward_flops(graph, batch_size)


def run_flops(path: Path) -> int | None:
    """The training FLOPs of the run directory ``path``: its result's ``train_flops``, or
    for a run from before results recorded it, its iterations times the step FLOPs of its
    ``graph.json`` at its ``config.json``'s batch size. ``None`` where the directory holds no
    finished run that says."""
    try:
        result = json.loads((path / "result.json").read_text())
        if result.get("train_flops"):
            return int(result["train_flops"])
        config = json.loads((path / "config.json").read_text())
        graph = NetGraph.from_json(path / "graph.json")
        return int(result["iterations"]) * step_flops(graph, batch_size=int(config["batch_size"]))
    except (OSError, ValueError, KeyError, TypeError, GraphError):
        return None


def format_flops(flops: float) -> str:
    """``flops`` with an SI prefix, three significant digits: ``"4.21 PFLOP"``.

    >>> format_flops(4.2144e15), format_flops(950), format_flops(0)
    ('4.21 PFLOP', '950 FLOP', '0 FLOP')
    """
    for scale, prefix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"),
                          (1e3, "k")):  # fmt: skip
        if abs(flops) >= scale:
            return f"{flops / scale:.3g} {prefix}FLOP"
    return f"{flops:.0f} FLOP"
