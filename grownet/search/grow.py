"""Growth surgery: insert blocks joined by gradual DropIn, and take grown blocks out again.

A *position* is a node named in the spec's ``insert_after``. The block grown there mirrors
the weighted layer that ends at the position (a conv or linear, with the BatchNorm, ReLU or
LRN that follow it), keeping the position's shape: stride 1 and "same" padding, so no Resize
is needed and the DropIn's old path is the position's own output. At a residual add (a
transformer block's last add) the block grown is a copy of the ``units`` residual units that
end there (:mod:`grownet.graph.blocks`), joined by a DropIn the same way; its weights start
fresh, at zero on the layers that end its branches, or as copies of the block it repeats
(:func:`block_starts`). Growth state (the block ends
of each position, in order along the chain) is plain JSON, kept in each stage's record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from grownet.graph import GraphError, LayerSpec, NetGraph
from grownet.graph.blocks import RESIDUAL_ADDS, block_state, insert_block, residual_block
from grownet.graph.surgery import collapse_dropin, insert_after
from grownet.graph.widen import without_width_mixers

WEIGHTED = ("conv", "linear")
_FOLLOWERS = ("batchnorm", "relu", "lrn", "dropout")


def weighted_depth(graph: NetGraph) -> int:
    """Depth as the papers count it: conv and linear layers (bypassed or not)."""
    return len(graph.nodes_of(*WEIGHTED))


@dataclass
class Growth:
    """Where blocks have been grown: ``ends[position]`` lists the nodes after which a block
    may go, in chain order (the position itself, then each grown block's DropIn);
    ``blocks`` records each grown block's DropIn, stage and layers."""

    ends: dict[str, list[str]]
    blocks: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def start(cls, positions: Sequence[str]) -> Growth:
        return cls({p: [p] for p in positions})

    def to_dict(self) -> dict[str, Any]:
        return {"ends": self.ends, "blocks": self.blocks}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Growth:
        return cls({k: list(v) for k, v in data["ends"].items()}, list(data["blocks"]))

    def dropins(self, *, before_stage: int | None = None) -> list[str]:
        """DropIn nodes of the grown blocks (of stages before ``before_stage``)."""
        return [
            b["dropin"] for b in self.blocks if before_stage is None or b["stage"] < before_stage
        ]


def block_template(graph: NetGraph, position: str) -> list[tuple[str, LayerSpec]]:
    """The layers ending at ``position``, from its weighted layer, as a shape-keeping block.

    Example:
        >>> from grownet.zoo import convnet
        >>> [n for n, _ in block_template(convnet(), "relu1_1")]
        ['conv1_1', 'bn1_1', 'relu1_1']
    """
    if position not in graph:
        raise GraphError(f"growth position {position!r} is not a node of the base network")
    chain, node = [], position
    while graph.op(node) not in WEIGHTED:
        if graph.op(node) not in _FOLLOWERS or len(graph.inputs(node)) != 1:
            raise GraphError(
                f"cannot grow after {position!r}: between it and its conv or linear layer lies "
                f"{node!r} ({graph.op(node)}); grow after the ReLU that follows a conv instead"
            )
        chain.append(node)
        node = graph.inputs(node)[0]
    chain.append(node)
    shape = graph.shapes()[position]
    layers = []
    for name in reversed(chain):
        spec = graph.spec(name)
        params = dict(spec.params)
        if spec.op == "conv":
            k = params["kernel_size"]
            ks = (k, k) if isinstance(k, int) else tuple(k)
            if any(v % 2 == 0 for v in ks):
                raise GraphError(
                    f"cannot grow after {position!r}: {name!r} has an even kernel {k}, so a "
                    "copy cannot keep the spatial size; use an odd kernel"
                )
            params.update(
                out_channels=shape[0],
                stride=1,
                padding=[v // 2 for v in ks],
                dilation=1,
                groups=1,
            )
        elif spec.op == "linear":
            params.update(out_features=shape[0])
        layers.append((name, LayerSpec(spec.op, **params)))
    return layers


def check_position(graph: NetGraph, position: str, *, units: int = 1) -> None:
    """Raise the :class:`GraphError` growing a block at ``position`` would raise (before a
    search trains anything): the residual units ending there, or the layers it mirrors."""
    if graph.op(position) in RESIDUAL_ADDS:
        residual_block(graph, position, units=units)
    else:
        block_template(graph, position)


def grow_stage(
    graph: NetGraph,
    growth: Growth,
    *,
    stage: int,
    mode: str,
    dropin_length: int,
    stagger: int,
    stage_iters: int,
    units: int = 1,
) -> tuple[NetGraph, Growth]:
    """``graph`` with this stage's new blocks, each joined by a gradual DropIn.

    ``mode="append"``: one block after the last end of each position; ``"double"``: one after
    every end. The k-th new DropIn of the stage starts mixing at ``k * stagger`` (asynchronous
    DropIn when ``stagger`` > 0); all must finish within ``stage_iters``.
    """
    targets = [
        (position, end)
        for position, ends in growth.ends.items()
        for end in (ends[-1:] if mode == "append" else list(ends))
    ]
    last_start = (len(targets) - 1) * stagger
    if last_start + dropin_length > stage_iters:
        raise GraphError(
            f"stage {stage}: {len(targets)} new blocks staggered by {stagger} with "
            f"dropin_length {dropin_length} need {last_start + dropin_length} iterations, the "
            f"stage has {stage_iters}; lower stagger or raise stage_iters"
        )
    g = graph
    ends = {p: list(e) for p, e in growth.ends.items()}
    blocks = list(growth.blocks)
    for k, (position, end) in enumerate(targets):
        count = sum(b["position"] == position and b["stage"] == stage for b in blocks)
        suffix = f"_g{stage}b{count}"
        dropin = LayerSpec("dropin", mode="gradual", length=dropin_length, start=k * stagger)
        record: dict[str, Any] = {}
        if graph.op(position) in RESIDUAL_ADDS:
            block = residual_block(graph, position, units=units)
            g, copies = insert_block(g, end, block, suffix=suffix, dropin=dropin)
            names = list(copies.values())
            dropin_id = f"{copies[position]}_dropin"
            record["template"] = list(block.nodes)
        else:
            layers = [(f"{name}{suffix}", spec) for name, spec in block_template(graph, position)]
            names = [n for n, _ in layers]
            dropin_id = f"{names[-1]}_dropin"
            g = insert_after(g, end, layers, dropin=dropin, dropin_id=dropin_id)
        chain = ends[position]
        chain.insert(chain.index(end) + 1, dropin_id)
        blocks.append(
            {
                "stage": stage,
                "position": position,
                "dropin": dropin_id,
                "layers": names,
                "start": k * stagger,
                **record,
            }
        )
    return g, Growth(ends, blocks)


def block_starts(
    graph: NetGraph, growth: Growth, stage: int, state: dict[str, Tensor], start: str
) -> dict[str, Tensor]:
    """``state`` (a parent's weights) with the starting tensors of stage ``stage``'s residual
    blocks in ``graph``: ``"fresh"`` adds none, ``"zero"`` zeroes the layers that end each
    branch, ``"copy"`` repeats the weights of the block each one copies (stacking)."""
    extra: dict[str, Tensor] = {}
    for b in growth.blocks:
        if b["stage"] == stage and "template" in b:
            copies = dict(zip(b["template"], b["layers"], strict=True))
            extra.update(block_state(graph, copies, state, start=start))
    return {**state, **extra}


def removal_order(growth: Growth) -> list[str]:
    """Grown DropIns in the order a shallower network gives them up: the newest block of the
    position with the most blocks first, so depth is taken evenly from all positions."""
    left = {p: [b["dropin"] for b in growth.blocks if b["position"] == p] for p in growth.ends}
    order = []
    while any(left.values()):
        position = max(left, key=lambda p: len(left[p]))
        order.append(left[position].pop())
    return order


def shallower(graph: NetGraph, growth: Growth, remove: int) -> NetGraph:
    """``graph`` with ``remove`` grown blocks taken out (see :func:`removal_order`) and every
    other DropIn collapsed onto its new layers: a plain network."""
    order = removal_order(growth)
    if not 0 <= remove <= len(order):
        raise ValueError(f"remove must be in [0, {len(order)}], got {remove!r}")
    g = graph
    for node in order[:remove]:
        g = collapse_dropin(g, node, keep="old")
    return collapse_all(g)


def collapse_all(graph: NetGraph) -> NetGraph:
    """Every DropIn replaced by its new path and every width DropIn taken out: the grown
    network as it runs once grown."""
    g = without_width_mixers(graph)
    for node in g.nodes_of("dropin"):
        g = collapse_dropin(g, node, keep="new")
    return g

