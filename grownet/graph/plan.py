"""The per-step plan: which gates are open and how far each DropIn has mixed in.

Decisions are drawn *outside* ``forward`` (DESIGN.md, key idea 2). A :class:`Planner` derives
each step's draws from ``(seed, iteration)`` alone, with its own ``torch.Generator``: every
DDP rank built with the same seed draws the same plan, a resumed run redraws exactly what the
uninterrupted run drew, and nothing random is left inside a region ``torch.compile`` traces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from grownet.graph.netgraph import NetGraph
from grownet.layers import draw_gates, gradual_q

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: spreads (seed, iteration) over 63 bits


@dataclass(frozen=True)
class StepPlan:
    """One step's decisions.

    ``gates`` maps a ``gated_add`` node to whether its residual branch runs (missing: open);
    ``dropin_q`` maps a ``dropin`` node to its old-path ratio q (missing: derived from
    ``iteration`` and the node's own schedule), and a ``width_dropin`` node to the share of
    its new units still off, by the same schedule.
    """

    iteration: int = 0
    gates: Mapping[str, bool] = field(default_factory=dict)
    dropin_q: Mapping[str, float] = field(default_factory=dict)

    @property
    def closed_gates(self) -> tuple[str, ...]:
        return tuple(sorted(n for n, is_open in self.gates.items() if not is_open))


class Planner:
    """Draws a :class:`StepPlan` for any iteration of a graph, reproducibly.

    Example:
        >>> from grownet.zoo import build
        >>> planner = Planner(build("cifar_resnet", depth=20, depth_dropout=0.5), seed=0)
        >>> planner.draw(7) == planner.draw(7)
        True
    """

    def __init__(
        self, graph: NetGraph, *, seed: int = 0, fixed_q: Mapping[str, float] | None = None
    ) -> None:
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.seed = seed
        gated = graph.nodes_of("gated_add")
        self._gate_nodes = [n for n in gated if graph.spec(n).params["drop_prob"] > 0]
        self._survival = torch.tensor(
            [1.0 - graph.spec(n).params["drop_prob"] for n in self._gate_nodes],
            dtype=torch.float64,
        )
        self._dropins = {
            n: graph.spec(n).params
            for n in graph.nodes_of("dropin")
            if graph.spec(n).params["mode"] == "gradual"
        }
        # Width DropIns hand their new units over on the same schedule (grownet.graph.widen).
        self._width_dropins = {n: graph.spec(n).params for n in graph.nodes_of("width_dropin")}
        # A ratio sweep holds chosen DropIns at one q instead of their schedules.
        self._fixed_q = dict(fixed_q or {})
        for node, q in self._fixed_q.items():
            if node not in self._dropins:
                raise ValueError(f"fixed_q: {node!r} is not a gradual dropin node of the graph")
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"fixed_q[{node!r}] must be in [0, 1], got {q!r}")

    @property
    def gated_units(self) -> int:
        """How many residual units may be dropped (drop probability > 0)."""
        return len(self._gate_nodes)

    def draw(self, iteration: int) -> StepPlan:
        gates: dict[str, bool] = {}
        if self._gate_nodes:
            generator = torch.Generator().manual_seed((self.seed * _MIX + iteration) % 2**63)
            drawn = draw_gates(self._survival, generator=generator).tolist()
            gates = dict(zip(self._gate_nodes, drawn, strict=True))
        q = {
            n: self._fixed_q[n]
            if n in self._fixed_q
            else gradual_q(iteration, length=p["length"], start=p["start"])
            for n, p in self._dropins.items()
        }
        for n, p in self._width_dropins.items():
            q[n] = gradual_q(iteration, length=p["length"], start=p["start"])
        return StepPlan(iteration=iteration, gates=gates, dropin_q=q)
