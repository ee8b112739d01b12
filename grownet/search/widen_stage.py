"""Width growth stages: every chosen layer gains units, mixed in gradually.

A width stage takes the network a stage ended with (its weights included), widens each unit a
width sweep would thin (one layer, or a coupled group as one: :func:`sweep_units`; an
attention layer gains heads, their output starting at zero: :func:`grow_heads`) by
``width_step`` units or to ``ceil(width * width_factor)``, capped at ``max_width``, with
:func:`grownet.graph.widen.widen_gradually`: the new units are handed over one by one over
``dropin_length`` iterations, the k-th group starting ``k * stagger`` iterations into the
stage. So the stage starts from exactly the function the parent stage ended with. A
transformer's residual stream (its token embedding, every block's output projections, norms
and the tied head) grows as one group, its norms leaving the new units out of their statistics
until they are handed over (:mod:`grownet.layers.prefix_norm`).

Once a stage has run, its ``width_dropin`` nodes pass everything through (their schedules end
within the stage), so they are taken out before the network grows again or is swept:
:func:`grownet.graph.widen.without_width_mixers`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from grownet.graph import GraphError, NetGraph
from grownet.graph.coupling import channel_groups, group_of
from grownet.graph.executor import GraphNet
from grownet.graph.heads import grow_heads
from grownet.graph.widen import tied_readers, widen_gradually, without_width_mixers
from grownet.search.spec import GrowthSpec
from grownet.search.sweeps import quantum, sweep_units, width

__all__ = ["planned_widths", "widen_stage", "widen_to", "width_blocked"]


def planned_widths(graph: NetGraph, growth: GrowthSpec) -> list[dict[str, Any]]:
    """What a width stage on ``graph`` would do: per unit, its first layer, width now and
    after (units already at ``max_width`` left out).

    Example:
        >>> from grownet.zoo import build
        >>> [(p["layer"], p["from"], p["to"]) for p in planned_widths(build("lenet"),
        ...                                                            GrowthSpec())]
        [('conv1', 20, 40), ('conv2', 50, 100), ('ip1', 500, 1000)]
    """
    plain = without_width_mixers(graph)
    widths = {p: g.width for g in channel_groups(plain) for p in g.producers}
    plans = []
    for unit in sweep_units(plain, growth.width_layers, growing=True):
        now = width(plain, unit[0]) if plain.op(unit[0]) == "attention" else widths[unit[0]]
        grown = now + growth.width_step if growth.width_step else now * growth.width_factor
        q = quantum(plain, unit)  # a grouped conv grows by whole conv groups
        target = min(q * math.ceil(round(grown / q, 9)), growth.max_width // q * q)
        if target > now:
            plans.append({"layer": unit[0], "layers": list(unit), "from": now, "to": target})
    return plans


def width_blocked(graph: NetGraph, growth: GrowthSpec) -> str | None:
    """Why a width stage cannot grow ``graph`` (None when it can)."""
    try:
        plans = planned_widths(graph, growth)
    except GraphError as err:
        return f"width cannot grow: {err}"
    if not plans:
        return f"width cannot grow: every widenable layer is at max_width {growth.max_width}"
    return None


def widen_stage(
    graph: NetGraph,
    state: Mapping[str, Tensor],
    growth: GrowthSpec,
    *,
    stage: int,
    seed: int,
) -> tuple[NetGraph, dict[str, Tensor], list[dict[str, Any]]]:
    """``graph`` holding ``state``, widened as :func:`planned_widths` says and mixing the new
    units in: the new graph, its weights (CPU) and what was widened."""
    plans = planned_widths(graph, growth)
    last_start = (len(plans) - 1) * growth.stagger
    if last_start + growth.dropin_length > growth.stage_iters:
        raise GraphError(
            f"stage {stage}: {len(plans)} widened groups staggered by {growth.stagger} with "
            f"dropin_length {growth.dropin_length} need {last_start + growth.dropin_length} "
            f"iterations, the stage has {growth.stage_iters}; lower stagger or raise stage_iters"
        )
    for k, plan in enumerate(plans):
        plan["start"] = k * growth.stagger
    wide, weights = widen_to(graph, state, plans, length=growth.dropin_length,
                             init=growth.width_init, seed=seed + 1000 * stage)  # fmt: skip
    return wide, weights, plans


def widen_to(
    graph: NetGraph,
    state: Mapping[str, Tensor],
    plans: list[dict[str, Any]],
    *,
    length: int,
    init: str,
    seed: int,
) -> tuple[NetGraph, dict[str, Tensor]]:
    """``graph`` holding ``state`` with each plan's ``layer`` (and its coupled group) widened
    from ``from`` to ``to`` units, mixed in over ``length`` iterations from the plan's
    ``start`` (default 0), or at once when ``length`` is 0 (no ``width_dropin`` nodes: the
    plain wider network, which a Net2Net split leaves computing the same function). A group
    read through a tied table (a language model's residual stream and its head) grows with
    ``init = "random"`` whatever ``init`` says, and its plan records it."""
    plain = without_width_mixers(graph)
    net = GraphNet(plain)
    net.load_state_dict({k: v for k, v in state.items() if k.split(".")[1] in set(plain.nodes)})
    for k, plan in enumerate(plans):
        if net.graph.op(plan["layer"]) == "attention":  # new heads start silent, as in MSG
            net = grow_heads(net, plan["layer"], plan["to"] - plan["from"], seed=seed + k)
            continue
        how, group = init, group_of(net.graph, plan["layer"])
        if init == "net2net" and (tied_readers(net.graph, group) or group.quantum > 1):
            # a head tied to the token table cannot halve a split unit's columns alone; a
            # grouped conv's new group would read copies of units of other groups
            how = plan["init"] = "random"
        net = widen_gradually(
            net,
            plan["layer"],
            plan["to"] - plan["from"],
            dropin_length=max(length, 1),
            start=plan.get("start", 0),
            init=how,
            seed=seed + k,
        )
    wide = net.graph if length > 0 else without_width_mixers(net.graph)
    weights = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    return wide, weights
