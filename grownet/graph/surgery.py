"""Graph surgery that keeps what was learned.

Graph-level functions take a :class:`NetGraph` and return a new one; the input is never
changed. Hand the result to :meth:`GraphNet.rebuilt`, which reuses every node whose id, spec and
input shapes are unchanged (so its ``Parameter`` objects, and through :func:`sync_optimizer`
their optimizer state, survive) and builds the rest afresh; :func:`fresh_nodes` lists the
latter. Width changes carry weights too, so they act on a trained :class:`GraphNet`:
:func:`narrow` and :func:`widen` live in :mod:`grownet.graph.weights` and are re-exported here.

Example:
    >>> from grownet.graph import LayerSpec, NetGraph
    >>> conv = LayerSpec("conv", out_channels=4, kernel_size=3, padding=1)
    >>> g = NetGraph()
    >>> x = g.add("input", LayerSpec("input", shape=[3, 8, 8]))
    >>> x = g.chain(x, [("c1", conv), ("flat", LayerSpec("flatten")),
    ...                 ("fc", LayerSpec("linear", out_features=2))])
    >>> _ = g.add("output", LayerSpec("output"), [x])
    >>> grown = insert_after(g, "c1", [("c2", conv)])
    >>> grown.inputs("flat"), grown.inputs("c2_dropin")
    (['c2_dropin'], ['c2', 'c1'])
    >>> collapse_dropin(grown, "c2_dropin").inputs("flat")
    ['c2']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import networkx as nx

from grownet.graph.netgraph import NetGraph
from grownet.graph.ops import OPS
from grownet.graph.spec import GraphError, LayerSpec, Shape
from grownet.graph.weights import narrow, widen

__all__ = [
    "collapse_dropin",
    "exclusive_nodes",
    "fresh_nodes",
    "insert_after",
    "narrow",
    "remove_layer",
    "remove_residual_unit",
    "set_params",
    "widen",
]

JOINS = ("dropin", "plain")
RESIZE_METHODS = ("crop", "interpolate")


# --------------------------------------------------------------------------- helpers


def _require(graph: NetGraph, node: str, where: str) -> None:
    if node not in graph:
        raise GraphError(f"{where}: node {node!r} is not in the graph; check the id")


def _validated(graph: NetGraph, where: str) -> dict[str, Shape]:
    try:
        return graph.validate()
    except GraphError as err:
        raise GraphError(f"{where}: {err}") from None


def _out_edges(graph: NetGraph, node: str) -> list[tuple[str, int]]:
    """``(consumer, port)`` of every edge leaving ``node``, in a stable order."""
    return sorted((v, p) for _, v, p in graph.nx.out_edges(node, data="port"))


def _move_consumers(graph: NetGraph, src: str, dst: str, where: str) -> None:
    """In place: every consumer of ``src`` reads ``dst`` instead, on the same port."""
    for v, port in _out_edges(graph, src):
        if graph.nx.has_edge(dst, v):
            raise GraphError(
                f"{where}: {dst!r} already feeds {v!r}, which would then read it twice; "
                "remove the whole unit instead (remove_residual_unit or collapse_dropin)"
            )
        graph.nx.remove_edge(src, v)
        graph.nx.add_edge(dst, v, port=port)


def _free_id(graph: NetGraph, base: str, taken: set[str]) -> str:
    node, k = base, 2
    while node in graph or node in taken:
        node, k = f"{base}_{k}", k + 1
    return node


def exclusive_nodes(graph: NetGraph, source: str, target: str) -> frozenset[str]:
    """The nodes whose every path to the output runs through the edge ``source -> target``.

    The same rule as :func:`grownet.graph.executor.exclusive_branches`, for any edge: these
    are the nodes that become useless when the edge is cut. For a residual unit
    ``x -> conv -> bn -> add <- x`` the branch edge ``(bn, add)`` serves ``{conv, bn}``; the
    shortcut edge ``(x, add)`` serves nothing, since ``x`` feeds ``conv`` too.
    """
    if not graph.nx.has_edge(source, target):
        raise GraphError(f"there is no edge {source!r} -> {target!r}; check the node ids")
    cut = nx.restricted_view(graph.nx, [], [(source, target)])
    alive = nx.ancestors(cut, graph.output_node) | {graph.output_node}
    upstream = nx.ancestors(graph.nx, source) | {source}
    return frozenset(upstream - alive)


def _drop_exclusive(graph: NetGraph, source: str, target: str, where: str) -> None:
    """In place: remove the edge and every node only it served."""
    doomed = exclusive_nodes(graph, source, target)
    if graph.input_node in doomed:
        raise GraphError(
            f"{where}: every path from the input runs through {source!r} -> {target!r}; "
            "cutting it would disconnect the network"
        )
    graph.nx.remove_edge(source, target)
    graph.nx.remove_nodes_from(doomed)


def fresh_nodes(old: NetGraph, new: NetGraph) -> list[str]:
    """Nodes of ``new`` that :meth:`GraphNet.rebuilt` builds afresh (no modules passed).

    A node is reused when it has the same id, spec and input shapes in both graphs; every other
    node starts from new weights. Use it to see what a surgery costs in learned weights.

    Example:
        >>> fresh_nodes(graph, insert_after(graph, "c1", [("c2", conv)]))  # doctest: +SKIP
        ['c2', 'c2_dropin']
    """
    before, after = old.shapes(), new.shapes()
    fresh = []
    for node in new.topological_order():
        reused = (
            node in old
            and old.spec(node) == new.spec(node)
            and [before[u] for u in old.inputs(node)] == [after[u] for u in new.inputs(node)]
        )
        if not reused:
            fresh.append(node)
    return fresh


# --------------------------------------------------------------------------- insert


def _chain_shape(shape: Shape, layers: Sequence[tuple[str, LayerSpec]]) -> Shape:
    for node, spec in layers:
        try:
            shape = tuple(OPS[spec.op].infer(spec.params, [shape]))
        except GraphError as err:
            raise GraphError(f"node {node!r} ({spec.op}): {err}") from None
    return shape


def _check_layers(graph: NetGraph, layers: Sequence[tuple[str, LayerSpec]], where: str) -> None:
    if isinstance(layers, str | bytes) or not layers:
        raise GraphError(f"{where}: give at least one (node_id, LayerSpec) pair in layers")
    seen: set[str] = set()
    for item in layers:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise GraphError(
                f"{where}: each layer must be a (node_id, LayerSpec) pair, got {item!r}"
            )
        node, spec = item
        if not isinstance(spec, LayerSpec):
            raise GraphError(f"{where}: node {node!r} needs a LayerSpec, got {type(spec).__name__}")
        if node in graph or node in seen:
            raise GraphError(f"{where}: node {node!r} already exists; pick another id")
        if OPS[spec.op].min_inputs != 1:
            raise GraphError(
                f"{where}: node {node!r} ({spec.op}) is not a single-input layer; "
                "a chain holds layers with one input each"
            )
        seen.add(node)


def insert_after(
    graph: NetGraph,
    node: str,
    layers: Sequence[tuple[str, LayerSpec]],
    *,
    join: str = "dropin",
    dropin: LayerSpec | None = None,
    dropin_id: str | None = None,
    resize_method: str = "crop",
) -> NetGraph:
    """A copy of ``graph`` with a straight chain of new ``layers`` after ``node``.

    ``join="dropin"`` (default) joins the chain by a DropIn unit: ``new`` = the last new layer,
    ``old`` = ``node``; every former consumer of ``node`` reads the DropIn on the same port. If
    the two differ in shape, a ``resize`` node (``resize_method``: ``"crop"`` or
    ``"interpolate"``) on the old path makes ``node``'s output the new layer's shape
    (memorandum appendix A). ``dropin`` defaults to a gradual DropIn of length 1000, which at
    q = 1 passes the old path through exactly. Growing a net that has trained ``t`` steps, pass
    ``dropin=LayerSpec("dropin", length=d, start=t)``: the schedule counts from ``start``.
    ``join="plain"`` inserts the chain without one.

    Consumers then see the last new layer's shape: if it differs from ``node``'s the result
    must still validate (an ``add`` fed by ``node`` would not, and raises naming it) and those
    consumers are rebuilt with fresh weights (see :func:`fresh_nodes`).

    Example:
        >>> conv = LayerSpec("conv", out_channels=8, kernel_size=3, padding=1)
        >>> g2 = insert_after(g, "c1", [("c2", conv)])  # doctest: +SKIP
        >>> g2.inputs("c2_dropin")                      # doctest: +SKIP
        ['c2', 'c2_dropin_resize']
    """
    where = f"insert_after {node!r}"
    _require(graph, node, where)
    if graph.op(node) == "output":
        raise GraphError(
            f"{where}: nothing comes after the output node; insert after "
            f"{graph.inputs(node)[0]!r} instead"
        )
    if join not in JOINS:
        raise GraphError(f"{where}: join must be one of {JOINS}, got {join!r}")
    if resize_method not in RESIZE_METHODS:
        raise GraphError(
            f"{where}: resize_method must be one of {RESIZE_METHODS}, got {resize_method!r}"
        )
    if dropin is None:
        dropin = LayerSpec("dropin", mode="gradual", length=1000)
    if not isinstance(dropin, LayerSpec) or dropin.op != "dropin":
        raise GraphError(f"{where}: dropin must be a LayerSpec('dropin', ...), got {dropin!r}")
    _check_values(dropin, [], where)
    _check_layers(graph, layers, where)
    old_shape = graph.shapes()[node]
    new_shape = _chain_shape(old_shape, layers)

    g = graph.copy()
    consumers = _out_edges(g, node)
    g.nx.remove_edges_from((node, v) for v, _ in consumers)
    last = g.chain(node, layers)
    if join == "dropin":
        ids = {n for n, _ in layers}
        if dropin_id is None:
            dropin_id = _free_id(g, f"{last}_dropin", ids)
        elif dropin_id in g:
            raise GraphError(f"{where}: node {dropin_id!r} already exists; pick another dropin_id")
        old = node
        if new_shape != old_shape:
            if len(new_shape) != len(old_shape):
                raise GraphError(
                    f"{where}: cannot resize {node!r}'s output {old_shape} to the new layer "
                    f"{last!r}'s {new_shape} (different rank); end the chain with the same rank"
                )
            spec = LayerSpec("resize", shape=list(new_shape), method=resize_method)
            old = g.add(_free_id(g, f"{dropin_id}_resize", ids), spec, [node])
        last = g.add(dropin_id, dropin, [last, old])
    for v, port in consumers:
        g.nx.add_edge(last, v, port=port)
    _validated(g, where)
    return g


# --------------------------------------------------------------------------- remove


def remove_layer(graph: NetGraph, node: str) -> NetGraph:
    """A copy of ``graph`` without the single-input layer ``node``: its input feeds its consumers.

    Refused for the input and output nodes, for multi-input nodes (use
    :func:`remove_residual_unit` or :func:`collapse_dropin`) and for layers that change the
    shape, since their consumers' weights would no longer fit.

    Example:
        >>> remove_layer(g, "relu2").inputs("conv3")  # doctest: +SKIP
        ['bn2']
    """
    where = f"remove_layer {node!r}"
    _require(graph, node, where)
    op = graph.op(node)
    if op in ("input", "output"):
        raise GraphError(f"{where}: the {op} node cannot be removed")
    inputs = graph.inputs(node)
    if len(inputs) != 1:
        raise GraphError(
            f"{where}: node {node!r} ({op}) has {len(inputs)} inputs; remove_layer takes "
            "single-input layers (use remove_residual_unit or collapse_dropin)"
        )
    (source,) = inputs
    shapes = graph.shapes()
    if shapes[source] != shapes[node]:
        readers = ", ".join(repr(v) for v, _ in _out_edges(graph, node))
        raise GraphError(
            f"{where}: its consumers {readers} read {shapes[node]} but would get "
            f"{shapes[source]} from {source!r}; remove only shape-keeping layers "
            "(narrow or widen first)"
        )
    g = graph.copy()
    _move_consumers(g, node, source, where)
    g.nx.remove_node(node)
    _validated(g, where)
    return g


def _residual_port(graph: NetGraph, node: str, branch: int | None, where: str) -> int:
    op = graph.op(node)
    if op not in ("gated_add", "add") or len(graph.inputs(node)) != 2:
        raise GraphError(
            f"{where}: node {node!r} ({op}) is not a residual unit; give a gated_add node "
            "or an add with two inputs"
        )
    if branch is not None:
        if branch not in (0, 1) or (op == "gated_add" and branch != 0):
            allowed = "0" if op == "gated_add" else "0 or 1"
            raise GraphError(f"{where}: branch must be {allowed} for node {node!r}, got {branch!r}")
        return branch
    if op == "gated_add":
        return 0  # ports: (branch, shortcut)
    ins = graph.inputs(node)
    served = [bool(exclusive_nodes(graph, u, node)) for u in ins]
    if served.count(True) != 1:
        raise GraphError(
            f"{where}: cannot tell which input of add {node!r} is the residual branch "
            f"({ins[0]!r} or {ins[1]!r}); pass branch=0 or branch=1"
        )
    return served.index(True)


def remove_residual_unit(graph: NetGraph, add_node: str, *, branch: int | None = None) -> NetGraph:
    """A copy of ``graph`` with the residual unit ending in ``add_node`` reduced to its shortcut.

    ``add_node`` is a ``gated_add`` (port 0 is the branch) or an ``add`` of two inputs (the
    branch is the input that serves nodes of its own; ``branch`` picks the port when both do).
    The branch edge and every node only it serves go (the executor's exclusive-branch rule), and
    the add's consumers read the shortcut. An identity shortcut thus removes the unit; a
    projection or pool-and-pad shortcut stays, so shapes are kept. Identity-op nodes that served
    only the shortcut are bypassed too.

    Example:
        >>> remove_residual_unit(graph, "s1_b2_add")  # doctest: +SKIP
    """
    where = f"remove_residual_unit {add_node!r}"
    _require(graph, add_node, where)
    port = _residual_port(graph, add_node, branch, where)
    ins = graph.inputs(add_node)
    shortcut = ins[1 - port]
    passthrough = exclusive_nodes(graph, shortcut, add_node)
    g = graph.copy()
    _drop_exclusive(g, ins[port], add_node, where)
    _move_consumers(g, add_node, shortcut, where)
    g.nx.remove_node(add_node)
    while shortcut in passthrough and g.op(shortcut) == "identity":
        (source,) = g.inputs(shortcut)
        _move_consumers(g, shortcut, source, where)
        g.nx.remove_node(shortcut)
        shortcut = source
    _validated(g, where)
    return g


def collapse_dropin(
    graph: NetGraph, node: str, *, keep: str = "new", iteration: int | None = None
) -> NetGraph:
    """A copy of ``graph`` with the DropIn ``node`` replaced by a plain edge from one input.

    ``keep="new"`` (a gradual DropIn whose schedule finished, q = 0): consumers read the new
    layer and nodes only the old path served (e.g. its Resize) go. ``keep="old"`` (the
    shallower direction): consumers read the old path and the new layers go. With
    ``iteration``, refuse unless the gradual schedule has q = 0 (new) or q = 1 (old) there, so
    the collapsed net computes exactly what the DropIn did.

    Example:
        >>> collapse_dropin(grown, "c2_dropin", iteration=1000)  # doctest: +SKIP
    """
    where = f"collapse_dropin {node!r}"
    _require(graph, node, where)
    if graph.op(node) != "dropin":
        raise GraphError(f"{where}: node {node!r} is a {graph.op(node)}, not a dropin")
    if keep not in ("new", "old"):
        raise GraphError(f"{where}: keep must be 'new' or 'old', got {keep!r}")
    if iteration is not None:
        _check_finished(graph.spec(node).params, keep, iteration, where)
    kept, dropped = graph.inputs(node) if keep == "new" else graph.inputs(node)[::-1]
    g = graph.copy()
    _drop_exclusive(g, dropped, node, where)
    _move_consumers(g, node, kept, where)
    g.nx.remove_node(node)
    _validated(g, where)
    return g


def _check_finished(params: dict[str, Any], keep: str, iteration: int, where: str) -> None:
    from grownet.layers import gradual_q

    if params["mode"] != "gradual":
        raise GraphError(
            f"{where}: a regularizing DropIn has no finished schedule; pass no iteration to force"
        )
    try:
        q = gradual_q(iteration, length=params["length"], start=params["start"])
    except ValueError as err:
        raise GraphError(f"{where}: {err}") from None
    want = 0.0 if keep == "new" else 1.0
    if q != want:
        done = params["start"] + params["length"]
        raise GraphError(
            f"{where}: at iteration {iteration} q = {q:g}, not {want:g}; keep='new' needs "
            f"iteration >= {done}, keep='old' iteration <= {params['start']}"
        )


# --------------------------------------------------------------------------- params


def set_params(graph: NetGraph, node: str, **params: Any) -> NetGraph:
    """A copy of ``graph`` with some of ``node``'s spec parameters changed, validated.

    Parameter-free ops (DropIn, gated adds, width dropout, ...) are also built once, so a bad
    value (``drop_prob=1.5``) is refused here rather than at the next rebuild.

    Example:
        >>> set_params(graph, "s1_b1_add", drop_prob=0.5)    # doctest: +SKIP
        >>> set_params(graph, "wd3", retain=0.25)            # doctest: +SKIP
    """
    where = f"set_params {node!r}"
    _require(graph, node, where)
    if not params:
        raise GraphError(f"{where}: give at least one parameter to change")
    spec = graph.spec(node)
    try:
        new = spec.replace(**params)
    except GraphError as err:
        raise GraphError(f"{where}: {err}") from None
    g = graph.copy()
    g.set_spec(node, new)
    shapes = _validated(g, where)
    ins = [shapes[u] for u in g.inputs(node)]
    if OPS[new.op].count_params(new.params, ins, shapes[node]) == 0:
        _check_values(new, ins, where)
    return g


def _check_values(spec: LayerSpec, ins: list[Shape], where: str) -> None:
    """Build a parameter-free op's module once, so its own checks run now."""
    try:
        OPS[spec.op].build(spec.params, ins)
    except (ValueError, TypeError) as err:
        raise GraphError(f"{where}: {spec.op} {err}") from None
