"""The papers' theoretical time savings: as the papers state them, and from a graph's MACs.

Guo & Gould (Sec. III-C and IV-A) count only the convolutions of the residual units: a unit's
branch costs B, its trainable 1x1 shortcut S; everything outside the units and every
element-wise op (BatchNorm, ReLU, the add) is taken as free. The paper's own formula
(:func:`paper_saving`) goes further: every unit costs the same tau, the shortcut tau / 9, so
ResNet-56 at p = 0.5 costs ``24 tau / 2 + 3 tau + 24 tau / 9 = 17.667 tau`` of ``27 tau``:
34.6 %. :func:`theoretical_saving` weights the units by their graph MACs instead (the
downsampling ones are cheaper). What a CPU or GPU measures beside these numbers tells how far
the assumptions hold.
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
    """The papers' expected saving over the baseline ResNet, units weighted by their MACs.

    Guo & Gould's formula with each unit weighted by its branch MACs (the paper's own count,
    equal units, is :func:`paper_saving`): a droppable unit costs ``(1 - p) B + S`` (its branch
    when it runs, its trainable shortcut always), an exempt unit ``B``, the baseline unit ``B``.
    For ResNet-56 with 3 exempt units and S = B / 9 this gives 12.6 / 35.2 / 57.9 % at
    p = 0.25 / 0.5 / 0.75 (the paper: 12.3 / 34.6 / 56.7 %, counting its cheaper downsampling
    units as dear as the others).
    For stochastic depth the shortcuts are identities or parameter-free (S = 0), so the saving
    is the expected share of branch work dropped.

    S and B come from the graph's MACs, where a 1x1 shortcut is 1/18 of a two-conv branch.
    The paper sets S = B / 9 (Sec. IV-A: "24 (1/9) tau", tau being the whole primary path);
    ``shortcut_share=1/9`` applies that; with equal units (the example) it is the paper's figure.

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


def paper_saving(units: Sequence[Unit], *, shortcut_share: float = 1 / 9) -> float:
    """The saving by the paper's own formula: every unit costs the same (tau), whatever its MACs.

    A droppable unit costs ``(1 - p) + shortcut_share`` taus, a never-dropped one 1, the
    baseline unit 1 (Guo & Gould Sec. IV-A: "1/2 24 tau + 3 tau + 24 (1/9) tau ~ 17.667 tau",
    of 27 tau; 56.79 % at p = 0.75, which the paper truncates to 56.7). Huang et al.'s
    stochastic depth counts the same way with no shortcut cost (``shortcut_share=0``): the
    expected share of ResBlocks bypassed.

    Example:
        >>> units = [Unit("a", 7, 1, 0.0)] * 3 + [Unit("b", 9, 1, 0.5)] * 24  # MACs unused
        >>> [round(100 * paper_saving([*units[:3], *[Unit("b", 9, 1, p)] * 24]), 1)
        ...  for p in (0.25, 0.5, 0.75)]
        [12.3, 34.6, 56.8]
    """
    _check_share(shortcut_share)
    if not units:
        raise ValueError("paper_saving needs at least one unit, got none")
    cost = sum(1.0 if u.drop_prob == 0 else 1 - u.drop_prob + shortcut_share for u in units)
    return 1.0 - cost / len(units)


def paper_shortcut_cost(units: Sequence[Unit], *, shortcut_share: float = 1 / 9) -> float:
    """What the droppable units' shortcuts add by the paper's count (equal units), as a share.

    >>> units = [Unit("a", 7, 1, 0.0)] * 3 + [Unit("b", 9, 1, 0.5)] * 24
    >>> round(100 * paper_shortcut_cost(units), 1)  # 24 (1/9) tau of 27 tau
    9.9
    """
    _check_share(shortcut_share)
    if not units:
        raise ValueError("paper_shortcut_cost needs at least one unit, got none")
    return shortcut_share * sum(u.drop_prob > 0 for u in units) / len(units)


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
