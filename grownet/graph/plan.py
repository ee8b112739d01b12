"""The per-step plan: which gates are open and how far each DropIn has mixed in.

Decisions are drawn *outside* ``forward`` (DESIGN.md, key idea 2). A :class:`Planner` derives
each step's draws from ``(seed, iteration)`` alone, with its own ``torch.Generator``: every
DDP rank built with the same seed draws the same plan, a resumed run redraws exactly what the
uninterrupted run drew, and nothing random is left inside a region ``torch.compile`` traces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from grownet.graph.netgraph import NetGraph
from grownet.graph.ops import NORMS
from grownet.layers import draw_gates, gradual_q

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: spreads (seed, iteration) over 63 bits


@dataclass(frozen=True)
class StepPlan:
    """One step's decisions.

    ``gates`` maps a ``gated_add`` node to whether its residual branch runs (missing: open);
    ``dropin_q`` maps a ``dropin`` node to its old-path ratio q (missing: derived from
    ``iteration`` and the node's own schedule), and a ``width_dropin`` node to the share of
    its new units still off, by the same schedule; ``retain`` maps a ``width_dropout`` node
    (or a norm: :mod:`grownet.layers.prefix_norm`) to the share of channels it keeps this
    step (missing: its own ``retain``).
    """

    iteration: int = 0
    gates: Mapping[str, bool] = field(default_factory=dict)
    dropin_q: Mapping[str, float] = field(default_factory=dict)
    retain: Mapping[str, float] = field(default_factory=dict)

    @property
    def closed_gates(self) -> tuple[str, ...]:
        return tuple(sorted(n for n, is_open in self.gates.items() if not is_open))


@dataclass(frozen=True)
class Sandwich:
    """One-shot sweep training: every step runs the network at one of ``values``, the same
    value for every node named (``retain``: width-dropout and norm nodes, the value the share
    of channels kept; ``dropin``: gradual DropIn nodes, the value their ratio q).

    ``values`` run from the whole network to the smallest (widths 1.0, 0.9, ..., 0.125;
    DropIn 0.0, 0.25, ..., 0.75). The steps follow the sandwich rule of universally slimmable
    networks (Yu & Huang, 2019), spread over consecutive steps instead of summed in one: of
    every four steps one trains the whole network, one the smallest, two a value drawn
    uniformly from those between. The whole and the smallest bound every value between, so
    training both keeps every width in between near its best; one network a step keeps a
    step's cost that of one forward and backward.

    >>> s = Sandwich(values=(1.0, 0.5, 0.25), retain=("fc1_wd",))
    >>> [s.value(i, seed=0) for i in (0, 1, 4, 5)]
    [1.0, 0.25, 1.0, 0.25]
    """

    values: tuple[float, ...]
    retain: tuple[str, ...] = ()
    dropin: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.values) < 2:
            raise ValueError(f"values needs the whole network and one more, got {self.values!r}")
        if not self.retain and not self.dropin:
            raise ValueError("a sandwich needs width-dropout (retain) or DropIn (dropin) nodes")

    def value(self, iteration: int, *, seed: int) -> float:
        """The value of step ``iteration``: drawn from ``(seed, iteration)`` alone."""
        slot = iteration % 4
        if slot < 2 or len(self.values) == 2:
            return self.values[0] if slot % 2 == 0 else self.values[-1]
        middle = self.values[1:-1]
        generator = torch.Generator().manual_seed((seed * _MIX + iteration + 1) % 2**63)
        return middle[int(torch.randint(len(middle), (1,), generator=generator))]

    def to_dict(self) -> dict[str, list[Any]]:
        return {"values": list(self.values), "retain": list(self.retain),
                "dropin": list(self.dropin)}  # fmt: skip


class Planner:
    """Draws a :class:`StepPlan` for any iteration of a graph, reproducibly.

    Example:
        >>> from grownet.zoo import build
        >>> planner = Planner(build("cifar_resnet", depth=20, depth_dropout=0.5), seed=0)
        >>> planner.draw(7) == planner.draw(7)
        True
    """

    def __init__(
        self,
        graph: NetGraph,
        *,
        seed: int = 0,
        fixed_q: Mapping[str, float] | None = None,
        sandwich: Sandwich | None = None,
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
        # A one-shot sweep draws one ratio a step for its nodes instead.
        self.sandwich = sandwich
        if sandwich is not None:
            dropouts = set(graph.nodes_of("width_dropout", *NORMS))
            for node in sandwich.retain:
                if node not in dropouts:
                    raise ValueError(f"sandwich: {node!r} is not a width_dropout or norm node")
            for node in sandwich.dropin:
                if node not in self._dropins:
                    raise ValueError(f"sandwich: {node!r} is not a gradual dropin node")

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
        retain: dict[str, float] = {}
        if self.sandwich is not None:
            value = self.sandwich.value(iteration, seed=self.seed)
            retain = dict.fromkeys(self.sandwich.retain, value)
            q |= dict.fromkeys(self.sandwich.dropin, value)
        return StepPlan(iteration=iteration, gates=gates, dropin_q=q, retain=retain)
