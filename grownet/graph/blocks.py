"""Residual blocks as the unit of depth growth: find one, copy it, insert the copy.

A transformer (or a ResNet) grows by whole residual blocks: the ``units`` residual units that
end at an ``add`` node, with everything their branches compute. :func:`residual_block` finds
the block's nodes; :func:`insert_block` puts a renamed copy of them after any node of the same
shape, joined the way a growth operator asks:

- ``join="dropin"`` (gradual DropIn, MSG's masked growth in other words): the copy's output is
  mixed into the stream it reads over the DropIn's schedule, so at insertion (q = 1) the
  network computes exactly what it did, and the executor does not even run the new block;
- ``join="plain"``: the copy's output replaces the stream at once. With :func:`block_state`'s
  ``"zero"`` the layers that end each residual branch of the copy start at zero, so the copy
  starts as the identity (zero-init insertion); with ``"copy"`` it starts with the weights of
  the block it copies (depth-wise stacking, G_stack; MIDAS copies a middle block).

Example:
    >>> from grownet.zoo import gpt
    >>> g = gpt(depth=2, width=16, heads=2, in_shape=(8,), num_classes=5)
    >>> block = residual_block(g, "add2_2", units=2)
    >>> block.start, block.nodes[0], block.nodes[-1]
    ('add1_2', 'ln2_1', 'add2_2')
    >>> g3, copies = insert_block(g, "add2_2", block, suffix="_g1")
    >>> copies["add2_2"], g3.inputs("add2_2_g1_dropin")
    ('add2_2_g1', ['add2_2_g1', 'add2_2'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import networkx as nx
import torch
from torch import Tensor

from grownet.graph.netgraph import NetGraph
from grownet.graph.ops import OPS
from grownet.graph.spec import GraphError, LayerSpec

__all__ = [
    "RESIDUAL_ADDS",
    "Block",
    "block_ends",
    "block_state",
    "insert_block",
    "residual_block",
    "restacked_state",
    "zero_start",
]

JOINS = ("dropin", "plain")
STARTS = ("fresh", "zero", "copy")
_WEIGHT_FREE = ("dropout", "identity", "activation", "relu")


@dataclass(frozen=True)
class Block:
    """``units`` residual units: ``start`` feeds them, ``nodes`` (topological order, ``end``
    last) compute them."""

    start: str
    end: str
    nodes: tuple[str, ...]
    units: int


RESIDUAL_ADDS = ("add", "gated_add")


def _shortcut(graph: NetGraph, add: str) -> tuple[str, str]:
    """(shortcut, branch) inputs of the residual ``add``: the shortcut input feeds the branch
    (a ``gated_add`` names its ports: branch, shortcut)."""
    ins = graph.inputs(add)
    if graph.op(add) == "gated_add":
        return ins[1], ins[0]
    if graph.op(add) != "add" or len(ins) != 2:
        raise GraphError(f"node {add!r} is a {graph.op(add)} with {len(ins)} inputs, not a "
                         "residual add of two; grow after a block's last add")  # fmt: skip
    a, b = ins
    if a in nx.ancestors(graph.nx, b):
        return a, b
    if b in nx.ancestors(graph.nx, a):
        return b, a
    raise GraphError(f"node {add!r} adds two paths neither of which feeds the other: "
                     "not a residual unit")  # fmt: skip


def residual_block(graph: NetGraph, end: str, *, units: int = 1) -> Block:
    """The ``units`` residual units that end at ``end``, following shortcuts back."""
    if end not in graph:
        raise GraphError(f"growth position {end!r} is not a node of the network")
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise GraphError(f"units must be an integer >= 1, got {units!r}")
    if graph.op(end) not in RESIDUAL_ADDS:
        raise GraphError(f"{end!r} is a {graph.op(end)}, not a residual add; grow after a "
                         "block's last add")  # fmt: skip
    start = end
    for _ in range(units):
        if graph.op(start) not in RESIDUAL_ADDS:
            raise GraphError(f"{end!r} ends fewer than {units} residual units in a row: "
                             f"{start!r} is a {graph.op(start)}")  # fmt: skip
        start = _shortcut(graph, start)[0]
    inside = (nx.descendants(graph.nx, start) & nx.ancestors(graph.nx, end)) | {end}
    for node in inside:
        outside = [u for u in graph.inputs(node) if u != start and u not in inside]
        if outside:
            raise GraphError(f"the block ending at {end!r} reads {outside[0]!r} from outside "
                             f"it (into {node!r}); only {start!r} may feed it")  # fmt: skip
    order = [n for n in graph.topological_order() if n in inside]
    return Block(start, end, tuple(order), units)


def insert_block(
    graph: NetGraph,
    at: str,
    block: Block,
    *,
    suffix: str,
    join: str = "dropin",
    dropin: LayerSpec | None = None,
) -> tuple[NetGraph, dict[str, str]]:
    """A copy of ``graph`` with ``block``'s nodes copied (ids + ``suffix``) after ``at``, and
    the copy mapping ``{block node: its copy}``. The copy reads ``at`` where the block read its
    start; ``at``'s consumers read the copy's end (``join="plain"``) or a DropIn of the copy's
    end (new) and ``at`` (old), ``<end copy>_dropin`` (``join="dropin"``, with ``dropin``'s
    schedule; default gradual, length 1000)."""
    if join not in JOINS:
        raise GraphError(f"join must be one of {', '.join(JOINS)}, got {join!r}")
    if at not in graph:
        raise GraphError(f"insert_block: {at!r} is not a node of the network")
    shapes = graph.shapes()
    if shapes[at] != shapes[block.start]:
        raise GraphError(f"insert_block: {at!r} gives {shapes[at]}, the block reads "
                         f"{shapes[block.start]} from {block.start!r}")  # fmt: skip
    copies = {n: f"{n}{suffix}" for n in block.nodes}
    taken = [c for c in copies.values() if c in graph]
    if taken:
        raise GraphError(f"insert_block: node {taken[0]!r} already exists; pick another suffix")
    g = graph.copy()
    consumers = [(v, port) for _, v, port in g.nx.out_edges(at, data="port")]
    g.nx.remove_edges_from((at, v) for v, _ in consumers)
    for node in block.nodes:
        feeds = [at if u == block.start else copies[u] for u in graph.inputs(node)]
        g.add(copies[node], graph.spec(node), feeds)
    last = copies[block.end]
    if join == "dropin":
        spec = dropin or LayerSpec("dropin", mode="gradual", length=1000)
        if spec.op != "dropin":
            raise GraphError(f"insert_block: dropin must be a dropin spec, got {spec.op!r}")
        last = g.add(f"{last}_dropin", spec, [last, at])
    for v, port in consumers:
        g.nx.add_edge(last, v, port=port)
    g.validate()
    return g, copies


def _branch_ends(graph: NetGraph, nodes: Sequence[str]) -> list[str]:
    """The weighted layer that ends each residual branch among ``nodes`` (what a zero start
    zeroes so that every unit adds nothing)."""
    ends = []
    for node in nodes:
        if graph.op(node) not in RESIDUAL_ADDS or len(graph.inputs(node)) != 2:
            continue
        branch = _shortcut(graph, node)[1]
        while graph.op(branch) in _WEIGHT_FREE and len(graph.inputs(branch)) == 1:
            branch = graph.inputs(branch)[0]
        if graph.op(branch) not in ("linear", "conv", "attention"):
            raise GraphError(f"the branch into {node!r} ends in {branch!r} "
                             f"({graph.op(branch)}), which has no weights to zero")  # fmt: skip
        ends.append(branch)
    return ends


def block_state(
    graph: NetGraph,
    copies: Mapping[str, str],
    state: Mapping[str, Tensor],
    *,
    start: str,
) -> dict[str, Tensor]:
    """The starting tensors of a copied block's layers, under the executor's state keys
    (``layers.<node>.<name>``): ``"copy"`` repeats the copied layers' tensors from ``state``
    (stacking), ``"zero"`` zeroes the tensors of the layers that end each residual branch of
    the copy (the rest start fresh), ``"fresh"`` gives nothing (every layer initialised anew).
    ``graph`` is the grown graph."""
    if start not in STARTS:
        raise GraphError(f"start must be one of {', '.join(STARTS)}, got {start!r}")
    if start == "copy":
        return _renamed(state, copies)
    if start == "zero":
        return zero_start(graph, tuple(copies.values()))
    return {}


def zero_start(graph: NetGraph, nodes: Sequence[str]) -> dict[str, Tensor]:
    """Zero tensors for the weights of the layer that ends each residual branch among
    ``nodes`` (an attention's output projection): those units then add nothing, and the
    block they make up starts as the identity."""
    shapes = graph.shapes()
    out: dict[str, Tensor] = {}
    for node in _branch_ends(graph, nodes):
        with torch.device("meta"):
            module = OPS[graph.op(node)].build(graph.spec(node).params,
                                               [shapes[u] for u in graph.inputs(node)])  # fmt: skip
        attention = graph.op(node) == "attention"
        owner = module.out_proj if attention else module
        prefix = f"layers.{node}." + ("out_proj." if attention else "")
        out.update({f"{prefix}{name}": torch.zeros(p.shape)
                    for name, p in owner.named_parameters()})  # fmt: skip
    return out


def block_ends(graph: NetGraph, *, units: int = 1) -> list[str]:
    """The residual adds that end each block of ``units`` units, in order along the network
    (a pre-norm transformer's blocks with ``units=2``: ``add1_2``, ``add2_2``, ...)."""
    adds = [n for n in graph.topological_order() if graph.op(n) in RESIDUAL_ADDS]
    if not adds or len(adds) % units:
        raise GraphError(f"the network's {len(adds)} residual adds do not make blocks of "
                         f"{units} units")  # fmt: skip
    return adds[units - 1 :: units]


def restacked_state(
    source: NetGraph,
    state: Mapping[str, Tensor],
    target: NetGraph,
    order: list[int | None],
    *,
    units: int = 1,
) -> dict[str, Tensor]:
    """Starting tensors for ``target`` (a deeper network of the same blocks) from ``source``'s
    trained ``state``: target block ``k`` takes the tensors of source block ``order[k]``
    (0-based; None: no tensors, the block starts fresh), every layer outside the blocks (the
    embeddings, the final norm, the head) its own. Stacking ``[0, 1, 0, 1]`` repeats the
    stack (G_stack), ``[0, 0, 1, 1]`` copies each block in place (middle-out stacking)."""
    src_ends, dst_ends = block_ends(source, units=units), block_ends(target, units=units)
    if len(order) != len(dst_ends):
        raise GraphError(f"order needs one entry per target block ({len(dst_ends)}), "
                         f"got {len(order)}")  # fmt: skip
    bad = [i for i in order if i is not None and not 0 <= i < len(src_ends)]
    if bad:
        raise GraphError(f"order names source block {bad[0]}; the source has {len(src_ends)}")
    src_blocks = [residual_block(source, e, units=units).nodes for e in src_ends]
    dst_blocks = [residual_block(target, e, units=units).nodes for e in dst_ends]
    inside = {n for nodes in src_blocks for n in nodes}
    rename = {n: n for n in source.nodes if n not in inside}
    out = _renamed(state, rename)
    for k, i in enumerate(order):
        if i is None:
            continue
        if [source.op(n) for n in src_blocks[i]] != [target.op(n) for n in dst_blocks[k]]:
            raise GraphError(f"target block {k} is not built like source block {i}")
        out.update(_renamed(state, dict(zip(src_blocks[i], dst_blocks[k], strict=True))))
    return out


def _renamed(state: Mapping[str, Tensor], rename: Mapping[str, str]) -> dict[str, Tensor]:
    """``state``'s tensors of the layers in ``rename``, under their new layer names."""
    out = {}
    for key, value in state.items():
        prefix, node, rest = key.split(".", 2)
        if node in rename:
            out[f"{prefix}.{rename[node]}.{rest}"] = value.detach().clone()
    return out
