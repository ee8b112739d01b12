"""Gradual width growth: widen a layer, or a coupled group, and mix the new units in over time.

:func:`widen_gradually` adds ``k`` units to every producer of a channel group (one conv or
linear layer, or every producer of a residual stream, :func:`grownet.graph.coupling.group_of`)
and puts a ``width_dropin`` node (:class:`grownet.layers.width_dropin.WidthDropIn`) on each
edge where the group's channels are read (:func:`grownet.graph.coupling.zeroing_edges`, the
places a width sweep zeroes them). Each hands the new units over one by one on gradual
DropIn's schedule (``length``, ``start``); until a unit is handed over its consumers see its
stand-in (zero, or for a Net2Net split the unit it copies), so at ``start`` the network
computes exactly what it did, in training and eval, and no gradient reaches a new unit
before it counts. A layer or RMS norm of the group (a transformer's residual stream) leaves
the units not yet handed over out of its statistics on the same schedule
(:mod:`grownet.layers.prefix_norm`), so the function is kept there too.

The Planner gives each ``width_dropin`` node its q in ``StepPlan.dropin_q``;
The executor hands each step's q to these layers, as it does for DropIn. Once every schedule has
ended, :func:`collapse_width_dropins` removes the nodes, leaving the plain widened network.
:func:`sync_widened_optimizer` carries optimizer state over, old entries of widened
parameters included.

New channels are appended after the old ones everywhere (producer rows, batchnorm rows,
reader columns, and feature blocks behind a flatten), so every old entry of a widened tensor
keeps its position in the leading corner of the new one.

Example:
    >>> from grownet.zoo import build
    >>> net = GraphNet(build("cifar_resnet", depth=20, shortcut="B"))
    >>> wide = widen_gradually(net, "layer2_0_conv2", 8, dropin_length=100, start=0)
    >>> wide.shapes["layer2_2_add"], len(wide.graph.nodes_of("width_dropin"))
    ((40, 16, 16), 4)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from grownet.graph.coupling import (
    ChannelGroup,
    group_norms,
    group_of,
    on_edges,
    resized,
    zeroing_edges,
)
from grownet.graph.executor import GraphNet, sync_optimizer
from grownet.graph.netgraph import NetGraph
from grownet.graph.ops import NORMS
from grownet.graph.spec import GraphError, LayerSpec
from grownet.graph.weights import (
    _build_like,
    _expand,
    _install,
    producer_weight,
    remap_channels,
)
from grownet.layers.dropin import gradual_q

__all__ = [
    "INITS",
    "collapse_width_dropins",
    "sync_widened_optimizer",
    "tied_readers",
    "widen_gradually",
    "without_width_mixers",
]

INITS = ("random", "net2net")


def widen_gradually(
    net: GraphNet,
    node_or_group: str | ChannelGroup,
    k: int,
    *,
    dropin_length: int,
    start: int,
    init: str = "random",
    seed: int = 0,
    noise: float = 0.01,
) -> GraphNet:
    """``net`` with ``k`` more units in every producer of the group, mixed in gradually.

    ``node_or_group``: a conv or linear node (its group, coupled producers included) or a
    :class:`ChannelGroup`. ``init="random"``: new producer rows, batchnorm rows and reader
    columns come from each layer's own filler (drawn under ``seed``). ``init="net2net"``:
    each new unit copies an old one drawn under ``seed`` (rows and batchnorm statistics),
    with Gaussian noise of std ``noise`` × the std of the producer's weights on its rows,
    and readers halve (more generally: divide by the number of copies) the columns of each
    copied unit, as :func:`grownet.graph.weights.widen` does.

    A ``width_dropin`` node with ``length=dropin_length`` and ``start`` goes on every edge
    where the group's channels are read, named ``<reader>_in_wdi``. Every untouched node
    keeps its module; widened ones keep their old weights in the leading positions.
    Behind a concat (Inception's branches) the mixers sit on the edges into it and readers
    after it gain their new columns at the group's offset; where a batchnorm follows the
    concat (DenseNet) they sit on the edges into the readers behind it, over the group's span
    of channels there, and that batchnorm gains its new rows at the offset too. Refused for
    groups a width sweep cannot zero (the output's channels, ...:
    :attr:`~grownet.graph.coupling.ChannelGroup.problem`), groups with a channel pad, a
    grouped conv's group by a ``k`` that is not whole conv groups, and a group still mixing
    in an earlier widening (collapse it first: its ``width_dropin`` nodes fix the channel
    count).
    """
    graph = net.graph
    group = group_of(graph, node_or_group) if isinstance(node_or_group, str) else node_or_group
    where = f"widen_gradually {group.name!r}"
    if group.problem:  # the mixers sit where a width sweep's zeroing would
        raise GraphError(f"{where}: cannot widen these channels: {group.problem}")
    pads = [*group.pads, *(p for p in group.producers if graph.op(p) == "channel_pad")]
    if pads:
        raise GraphError(f"{where}: channel_pad {pads[0]!r} touches this group; not supported")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise GraphError(f"{where}: k must be an int >= 1, got {k!r}")
    if k % group.quantum:
        raise GraphError(f"{where}: a grouped conv takes these channels {group.quantum} at a "
                         f"time; give k a multiple of {group.quantum}, got {k}")  # fmt: skip
    if init == "net2net" and group.quantum > 1:
        raise GraphError(f"{where}: a grouped conv's new group would read copies of other "
                         "groups' units, so a Net2Net split would change the function; use "
                         "init 'random'")  # fmt: skip
    if init not in INITS:
        raise GraphError(f"{where}: init must be one of {', '.join(INITS)}, got {init!r}")
    if not (isinstance(noise, int | float) and math.isfinite(noise) and noise >= 0):
        raise GraphError(f"{where}: noise must be a finite number >= 0, got {noise!r}")
    if init == "net2net" and (tied := tied_readers(graph, group)):
        raise GraphError(f"{where}: {tied[0]!r} reads these channels through the embedding "
                         "table it is tied to, so a Net2Net split cannot halve its columns "
                         "without changing the table; use init 'random'")  # fmt: skip
    old = group.width
    generator = torch.Generator().manual_seed(seed)
    sources = torch.randint(old, (k,), generator=generator) if init == "net2net" else None

    mix = LayerSpec(
        "width_dropin",
        old=old,
        length=dropin_length,
        start=start,
        sources=None if sources is None else sources.tolist(),
    )
    # behind a concat that a batchnorm follows (DenseNet) the mixers sit at the readers,
    # over the span of channels the group holds there
    edges = [(u, v, mix if at is None else mix.replace(offset=at, span=old + k))
             for u, v, at in zeroing_edges(graph, group)]  # fmt: skip
    g = on_edges(resized(graph, group, old + k), group, edges, "in_wdi", base=graph)
    for node in group_norms(graph, group):  # their statistics leave out the units still off
        g.set_spec(node, graph.spec(node).replace(old=old, length=dropin_length, start=start))

    if sources is None:
        nodes = [*group.producers, *(n for n, _ in group.carriers), *(r for r, _ in group.readers)]
        # behind a concat the new columns (a batchnorm's rows) go after the group's, before
        # the other groups'
        columns: dict[str, Tensor] = {}
        for node, block in group.readers:
            if (at := group.offsets.get(node)) is not None:
                total = net.layers[node].weight.shape[1] // block
                columns[node] = _expand(_moved(at + old, total, k), block)
        rows = {node: _moved(group.offsets[node] + old, net.shapes[node][0], k)
                for node, _ in group.carriers if node in group.offsets}  # fmt: skip
        return _widen_random(net, g, nodes, columns, rows, seed, where)
    index = torch.cat([torch.arange(old), sources])
    scale = 1.0 / torch.bincount(index, minlength=old).to(torch.float64)[index]
    rows, readers = group.rows(), group.readers
    wide = remap_channels(
        net, g, index, group.producers, rows, readers, where, offsets=group.offsets, scale=scale
    )
    if noise > 0:
        with torch.no_grad():
            for node in group.producers:
                key, dim = producer_weight(g, node)
                weight = wide.layers[node].get_parameter(key)
                kept, new = weight.narrow(dim, 0, old), weight.narrow(dim, old, k)
                std = float(kept.float().std()) if kept.numel() > 1 else 1.0
                draw = torch.randn(new.shape, generator=generator, dtype=torch.float64)
                new += (draw * (noise * std)).to(weight)
    return wide


def tied_readers(graph: NetGraph, group: ChannelGroup) -> list[str]:
    """The readers of ``group`` whose weight is one of its producers' tables (a language
    model's head tied to its token embedding)."""
    tables = set(group.producers)
    return [r for r, _ in group.readers
            if graph.op(r) == "linear" and graph.spec(r).params["tie"] in tables]  # fmt: skip


def _corner(shape: torch.Size) -> tuple[slice, ...]:
    return tuple(slice(0, s) for s in shape)


def _moved(cut: int, total: int, k: int) -> Tensor:
    """Where ``total`` channels go when ``k`` new ones come in at ``cut``."""
    return torch.cat([torch.arange(cut), torch.arange(cut, total) + k])


def _widen_random(
    net: GraphNet,
    g: NetGraph,
    nodes: list[str],
    columns: dict[str, Tensor],
    rows: dict[str, Tensor],
    seed: int,
    where: str,
) -> GraphNet:
    """``net`` rebuilt as ``g``, each of ``nodes`` built afresh from its filler with its old
    state copied into the leading corner of every tensor, but a weight's input columns into
    ``columns[node]`` where given (a reader behind a concat) and every tensor's entries into
    ``rows[node]`` (a batchnorm behind a concat)."""
    try:
        shapes = g.validate()
    except GraphError as err:
        raise GraphError(f"{where}: {err}") from None
    device = next(net.parameters()).device
    modules: dict[str, nn.Module] = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for node in dict.fromkeys(nodes):  # a node both producing and reading: built once
            old = net.layers[node]
            fresh = _build_like(g, node, shapes, old)
            state = fresh.state_dict()
            for key, value in old.state_dict().items():
                if value.dim() == 0:
                    state[key] = value.clone()
                elif node in rows:
                    state[key][rows[node]] = value
                elif key == "weight" and node in columns:
                    state[key][: value.shape[0], columns[node]] = value
                else:
                    state[key][_corner(value.shape)] = value
            modules[node] = _install(fresh, old, state)
    return net.rebuilt(g, modules=modules)


def collapse_width_dropins(net: GraphNet, iteration: int) -> GraphNet:
    """``net`` without its ``width_dropin`` nodes: the plain widened network, once every
    schedule has ended by ``iteration`` (removing a layer that still holds units off would
    change the function)."""
    for node in net.graph.nodes_of("width_dropin"):
        layer = net.layers[node]
        q = gradual_q(iteration, length=layer.length, start=layer.start)
        if q > 0:
            raise GraphError(
                f"collapse_width_dropins: {node!r} still holds new units off (q={q}); "
                "collapse once its schedule has ended"
            )
    return net.rebuilt(without_width_mixers(net.graph))


def without_width_mixers(graph: NetGraph) -> NetGraph:
    """``graph`` without its ``width_dropin`` nodes, which pass everything through once their
    schedules have ended (the caller's to know: :func:`collapse_width_dropins` checks it on a
    network), nor the permute pairs around those on channels-last tensors
    (:func:`grownet.graph.coupling.on_edges`). They hold no weights, so a state dict of
    ``graph`` fits the result."""
    g = graph.copy()
    for node in graph.nodes_of(*NORMS):
        if graph.spec(node).params["old"]:
            g.set_spec(node, graph.spec(node).replace(old=0, length=0, start=0))
    for node in graph.nodes_of("width_dropin"):
        (source,) = g.inputs(node)
        chain, after = [node], g.consumers(node)
        if _inverse_permutes(g, source, after):
            (source,), chain = g.inputs(source), [source, node, after[0]]
        for v in g.consumers(chain[-1]):
            g.nx.add_edge(source, v, port=g.nx.edges[chain[-1], v]["port"])
        g.nx.remove_nodes_from(chain)
    return g


def _inverse_permutes(graph: NetGraph, before: str, after: list[str]) -> bool:
    """Whether ``before`` (feeding only a mixer) and the mixer's one consumer ``after`` are
    permutes undoing each other."""
    if graph.op(before) != "permute" or len(after) != 1 or graph.op(after[0]) != "permute":
        return False
    there, back = graph.spec(before).params["dims"], graph.spec(after[0]).params["dims"]
    return len(graph.consumers(before)) == 1 and [there[d] for d in back] == sorted(there)


def sync_widened_optimizer(
    old: torch.optim.Optimizer, before: GraphNet, after: GraphNet
) -> torch.optim.Optimizer:
    """:func:`sync_optimizer` for ``after``, a widening of ``before``, that also keeps the
    state of the old entries of widened parameters.

    Untouched parameters keep their state, as there. A parameter of a node whose module
    widening replaced gets its old state (momentum, Adam moments) in the leading corner, zeros
    for the new units, and the old step count; a parameter without old state starts fresh.
    """
    new = sync_optimizer(old, after)
    priors = dict(before.layers.items())
    for node, module in after.layers.items():
        prior = priors.get(node)
        if prior is None or prior is module:
            continue
        was = dict(prior.named_parameters())
        for name, param in module.named_parameters():
            source = was.get(name)
            if source is None or source not in old.state:
                continue
            if any(a > b for a, b in zip(source.shape, param.shape, strict=False)):
                continue  # narrowed, not widened: nothing to carry
            new.state[param] = {
                key: _grown(value, source, param) for key, value in old.state[source].items()
            }
    return new


def _grown(value: object, source: Tensor, param: Tensor) -> object:
    if isinstance(value, Tensor) and value.shape == source.shape and value.dim() > 0:
        grown = torch.zeros_like(param, dtype=value.dtype)
        grown[_corner(source.shape)] = value
        return grown
    return value.clone() if isinstance(value, Tensor) else value
