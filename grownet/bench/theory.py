"""The papers' theoretical time savings, computed from a graph's own per-unit MACs.

Guo & Gould (Sec. III-C and IV-A) count only the convolutions of the residual units: a unit's
branch costs B, its trainable 1x1 shortcut S; everything outside the units and every
element-wise op (BatchNorm, ReLU, the add) is taken as free. What a CPU or GPU measures beside
these numbers tells how far that assumption holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grownet.graph import NetGraph
from grownet.graph.executor import exclusive_branches


@dataclass(frozen=True)
class Unit:
    """One residual unit: its gate node, branch and shortcut MACs, and drop probability."""

    node: str
    branch_macs: int
    shortcut_macs: int
    drop_prob: float


def unit_costs(graph: NetGraph) -> list[Unit]:
    """The gated residual units of ``graph`` with the MACs of their exclusive paths.

    Example:
        >>> from grownet.zoo import build
        >>> first = unit_costs(build("resnet20", shortcut="conv1x1"))[0]
        >>> first.branch_macs // first.shortcut_macs  # two 3x3 convs vs one 1x1
        18
    """
    branches = exclusive_branches(graph)
    costs = graph.costs()
    units = []
    for node in graph.nodes_of("gated_add"):
        branch_in, shortcut_in = graph.inputs(node)
        units.append(
            Unit(
                node=node,
                branch_macs=sum(costs[n].macs for n in branches[(branch_in, node)]),
                shortcut_macs=sum(costs[n].macs for n in branches[(shortcut_in, node)]),
                drop_prob=graph.spec(node).params["drop_prob"],
            )
        )
    return units


def theoretical_saving(units: Sequence[Unit], *, shortcut_share: float | None = None) -> float:
    """The papers' expected saving over the baseline ResNet, from per-unit MACs.

    Guo & Gould's formula: a droppable unit costs ``(1 - p) B + S`` (its branch when it runs,
    its trainable shortcut always), an exempt unit ``B``, the baseline unit ``B``. For ResNet-56
    with 3 exempt units and S = B / 9 this gives 12.3 / 34.6 / 56.7 % at p = 0.25 / 0.5 / 0.75.
    For stochastic depth the shortcuts are identities or parameter-free (S = 0), so the saving
    is the expected share of branch work dropped.

    S and B come from the graph's MACs, where a 1x1 shortcut is 1/18 of a two-conv branch.
    The paper sets S = B / 9 (Sec. IV-A: "24 (1/9) tau", tau being the whole primary path);
    ``shortcut_share=1/9`` applies that, and with it the paper's 12.3 / 34.6 / 56.7 % follow.

    Example:
        >>> units = [Unit("a", 9, 1, 0.0)] * 3 + [Unit("b", 9, 1, 0.5)] * 24
        >>> round(100 * theoretical_saving(units, shortcut_share=1 / 9), 1)
        34.6
    """
    _check_share(shortcut_share)

    def cost(u: Unit) -> float:
        if u.drop_prob == 0:
            return u.branch_macs
        shortcut = u.shortcut_macs if shortcut_share is None else shortcut_share * u.branch_macs
        return (1 - u.drop_prob) * u.branch_macs + shortcut

    return 1.0 - sum(cost(u) for u in units) / sum(u.branch_macs for u in units)


def shortcut_cost(units: Sequence[Unit], *, shortcut_share: float | None = None) -> float:
    """What the shortcuts add to the baseline's unit MACs by the same formula, as a share.

    This is what the same network at p = 0 costs over the baseline: 1/18 per unit from the
    graph's MACs, or ``shortcut_share`` per droppable unit as the paper counts.

    Example:
        >>> units = [Unit("a", 9, 1, 0.0)] * 3 + [Unit("b", 9, 1, 0.5)] * 24
        >>> round(100 * shortcut_cost(units, shortcut_share=1 / 9), 1)
        9.9
    """
    _check_share(shortcut_share)
    if shortcut_share is None:
        extra = sum(u.shortcut_macs for u in units)
    else:
        extra = sum(shortcut_share * u.branch_macs for u in units if u.drop_prob > 0)
    return extra / sum(u.branch_macs for u in units)


def skip_saving(units: Sequence[Unit]) -> float:
    """The expected share of the same network's unit MACs that skipping removes (vs p = 0).

    This isolates the skipping from the shortcuts' cost: both networks have every shortcut.

    Example:
        >>> units = [Unit("a", 9, 1, 0.0)] * 3 + [Unit("b", 9, 1, 0.5)] * 24
        >>> round(100 * skip_saving(units), 1)
        40.0
    """
    dropped = sum(u.drop_prob * u.branch_macs for u in units)
    return dropped / sum(u.branch_macs + u.shortcut_macs for u in units)


def _check_share(shortcut_share: float | None) -> None:
    if shortcut_share is not None and not 0.0 <= shortcut_share <= 1.0:
        raise ValueError(f"shortcut_share must be in [0, 1], got {shortcut_share!r}")
