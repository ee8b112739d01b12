"""Minimum depth of a residual network from a depth-dropout ratio sweep (Guo & Gould's gates,
read the memorandum's way, Sec. 5).

From the trained weights, fine-tune with every droppable residual unit's gate at drop
probability p, p rising (progressive, as the width sweep): each step trains random
sub-networks of about ``(1 - p) U`` of the U droppable units, skipping the rest for real.
The error at p is that of the sub-network with ``round(p U)`` units taken out for good
(:func:`remove_residual_unit`, evenly spaced), with the weights just fine-tuned: what a
network of that depth can do. The knee p* of error versus p gives the minimum depth, the
``U - round(p* U)`` units left, i.e. about ``L (1 - p*)``. The full network's error at each p
(every branch added, the gate kind's test-time rule) is recorded beside it.

A unit is droppable when its output has its input's shape (not the first unit of a stage,
the downsampling ones Guo & Gould never drop): taking it out leaves the shortcut, and shapes
hold. Imported networks' residual adds count too: torchvision's stochastic depth (EfficientNet
MBConv, ConvNeXt blocks) is already a gated add, and a plain add (ResNet, RegNet, MobileNet
inverted residuals with identity shortcuts) becomes a depth-dropout gate for the sweep.

The estimate is built from the trained weights by the same removal and verified like every
other estimate (:mod:`grownet.search.sweeps`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from grownet.graph import LayerSpec, NetGraph
from grownet.graph.spec import Shape
from grownet.graph.surgery import exclusive_nodes, remove_residual_unit, set_params
from grownet.search.grow import weighted_depth
from grownet.search.points import Correct, fine_tune_points
from grownet.search.runs import Echo, Trained, measure, state_for
from grownet.search.spec import SearchSpec
from grownet.search.sweeps import (
    SweepResult,
    Verifier,
    estimate_and_check,
    read_knee,
    settled_by,
    sized,
)


def residual_units(graph: NetGraph) -> list[str]:
    """The residual adds of units that may be dropped, in order: those whose branch (a
    ``gated_add``'s first input; either input of a plain two-input ``add``, as imported
    ResNets, RegNets and MobileNets have) reads only one node, of the add's output shape.

    Example:
        >>> from grownet.zoo import cifar_resnet
        >>> units = residual_units(cifar_resnet(depth=20))
        >>> len(units), units[0], "layer2_0_add" in units
        (7, 'layer1_0_add', False)
    """
    shapes = graph.shapes()
    adds = graph.nodes_of("gated_add", "add")
    return [add for add in adds if _branch_port(graph, add, shapes) is not None]


def _branch_port(graph: NetGraph, add: str, shapes: dict[str, Shape]) -> int | None:
    """The input port of ``add``'s droppable branch, or None when it has none."""
    ins = graph.inputs(add)
    if graph.op(add) == "add" and len(ins) != 2:
        return None
    for port in (0,) if graph.op(add) == "gated_add" else (0, 1):
        inside = exclusive_nodes(graph, ins[port], add)
        sources = {u for n in inside for u in graph.inputs(n)} - inside
        if len(sources) == 1 and shapes[sources.pop()] == shapes[add]:
            return port
    return None


def units_removed(ratio: float, units: int) -> int:
    """How many of ``units`` a drop ratio takes out: ``round(ratio * units)``, halves up.

    >>> units_removed(0.5, 9), units_removed(0.25, 6), units_removed(0.1, 3)
    (5, 2, 0)
    """
    return math.floor(ratio * units + 0.5 + 1e-9)


def spread(units: list[str], count: int) -> list[str]:
    """``count`` of ``units`` evenly spaced along the network (every stage loses its share).

    >>> spread(["a", "b", "c", "d", "e", "f"], 3)
    ['b', 'd', 'f']
    """
    if not 0 <= count <= len(units):
        raise ValueError(f"count must be in 0..{len(units)}, got {count!r}")
    return [units[math.floor((i + 0.5) * len(units) / count)] for i in range(count)]


def without_units(graph: NetGraph, units: list[str], ratio: float) -> NetGraph:
    """``graph`` with ``round(ratio * len(units))`` of ``units`` reduced to their shortcuts."""
    for add in spread(units, units_removed(ratio, len(units))):
        graph = remove_residual_unit(graph, add)
    return graph


def with_drop(graph: NetGraph, units: list[str], p: float) -> NetGraph:
    """``graph`` with each unit's gate dropping its branch with probability ``p``; a plain
    ``add`` becomes a depth-dropout ``gated_add`` (branch first), the same sum while open."""
    for add in units:
        if graph.op(add) == "add":
            port = _branch_port(graph, add, graph.shapes())
            graph = graph.copy()
            if port == 1:
                for u, port_of in zip(graph.inputs(add), (1, 0), strict=True):
                    graph.nx.edges[u, add]["port"] = port_of
            graph.set_spec(add, LayerSpec("gated_add", kind="depth_dropout"))
        graph = set_params(graph, add, drop_prob=p)
    return graph


def residual_depth_sweep(
    spec: SearchSpec,
    folder: Path,
    start: Trained,
    verify: Verifier,
    *,
    echo: Echo,
    quiet: bool = False,
) -> SweepResult:
    """Raise the depth-dropout ratio of ``start``'s residual units; the knee says how many
    units it needs. ``start`` is also the full network the estimate is checked against."""
    sweep = spec.depth
    units = residual_units(start.graph)
    total = len(start.graph.nodes_of("gated_add", "add"))
    ratios = sorted(sweep.ratios)  # p rising: ever shallower
    echo(f"depth sweep (depth dropout) over {len(units)} of {total} residual units: "
         f"{len(ratios)} ratios")  # fmt: skip

    def removes(p: float) -> int:
        return units_removed(p, len(units))

    def shallower_error(p: float, run: Trained) -> tuple[dict[str, Any], Correct]:
        sub = measure(spec, without_units(run.graph, units, p), run.state, "eval")
        point = {"error": 1.0 - sub.accuracy, "full_error": 1.0 - run.accuracy,
                 "units_removed": removes(p)}  # fmt: skip
        return point, sub.correct

    points, correct = fine_tune_points(
        spec, sweep, folder, start,
        lambda p: (with_drop(start.graph, units, p), None),
        ratios, echo, quiet, shallower_error, settled=settled_by("depth", start, sweep),
    )  # fmt: skip
    # Each sub-network is read on the same samples as the plateau: a paired test.
    record, candidates = read_knee("depth", points, start, sweep, correct, seed=spec.seed)
    sized(record, lambda p: total - removes(p))
    echo(f"  {record['finding']}")

    def attempt(p: float) -> tuple[dict[str, Any], Trained]:
        graph = without_units(start.graph, units, p)
        estimate = {"ratio": p, "size": weighted_depth(graph),
                    "full_size": weighted_depth(start.graph), "units": total - removes(p),
                    "full_units": total, "units_removed": removes(p)}  # fmt: skip
        return estimate, verify(f"depth-p{p:.3f}", graph, state_for(graph, start.state))

    return estimate_and_check(
        spec, record, start, attempt, candidates, echo, removes=removes, what="unit"
    )
