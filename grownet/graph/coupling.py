"""Coupled channels: the layers whose widths must change together, and narrowing them as one.

An add (``add``, ``gated_add``, ``dropin``) sums its inputs channel by channel, so every layer
whose channels reach it must keep the same width, and channel ``c`` of one is channel ``c`` of
all. :func:`channel_groups` finds these groups the way Torch-Pruning's dependency graph does:
join every node to its consumer when the consumer keeps the channels (batchnorm, activations,
pools, dropout, identity, flatten, global or adaptive average pooling, and the adds themselves);
a conv, linear or ``channel_pad`` starts new channels. Each connected part is one
:class:`ChannelGroup`: its *producers* (the convs and linear layers, 1x1 projection shortcuts
included, and channel pads whose output channels it is), its *members* (what carries the
channels) and its *readers* (the convs and linear layers, and channel pads, that read them).

A ``channel_pad`` shortcut (the zoo ResNets' option A) reads the stage before and produces the
stage after: its first channels are the earlier stage's, the rest zeros. Narrowing both stages
to prefixes keeps that: a pad to ``m`` channels of the earlier stage's first ``k`` holds what
the full pad held in its first ``m`` (zeros from ``k`` on once the earlier channels ``k..`` are
gone), provided ``m >= k``; so a stage is narrowed after the stage it pads, never below it.

A group cannot be narrowed (:attr:`ChannelGroup.problem` says why) when its channels are the
input's or the output's, reach a concat (positions would shift), a resize or another op with a
fixed shape, or meet a grouped conv.

Example:
    >>> from grownet.zoo import build
    >>> groups = coupled_groups(build("cifar_resnet", depth=20, shortcut="B"))
    >>> [(g.name, len(g.producers), g.width) for g in groups]
    [('conv1', 4, 16), ('layer2_0_conv2', 4, 32), ('layer3_0_conv2', 4, 64)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import torch

from grownet.graph.executor import GraphNet
from grownet.graph.netgraph import NetGraph
from grownet.graph.spec import GraphError, LayerSpec, Shape
from grownet.graph.weights import _CHANNELWISE, _keep_index, remap_channels

__all__ = ["ChannelGroup", "channel_groups", "coupled_groups", "group_of", "narrow_group"]

JOINS = frozenset({"add", "gated_add", "dropin"})
_PRODUCERS = {"conv": "out_channels", "linear": "out_features", "channel_pad": "channels"}
_PASSES = _CHANNELWISE | {"output"}  # the output joins its part, which then cannot narrow


@dataclass(frozen=True)
class ChannelGroup:
    """Layers sharing one set of channels (see the module docstring).

    ``readers`` pairs each reading conv or linear layer with its block size (features per
    channel: H*W behind a flatten, else 1); ``pads`` are the channel pads that read the group;
    ``blocks`` gives the block size at every producer and member.
    """

    name: str
    producers: tuple[str, ...]
    members: tuple[str, ...]
    joins: tuple[str, ...]
    readers: tuple[tuple[str, int], ...]
    pads: tuple[str, ...]
    width: int
    blocks: dict[str, int]
    problem: str | None

    @property
    def coupled(self) -> bool:
        """More than one producer, or an add: the widths move together."""
        return len(self.producers) > 1 or bool(self.joins)

    def norms(self, graph: NetGraph) -> list[tuple[str, int]]:
        """The batchnorm members with their block sizes."""
        return [(m, self.blocks[m]) for m in self.members if graph.op(m) == "batchnorm"]


def channel_groups(graph: NetGraph) -> list[ChannelGroup]:
    """Every set of channels a conv, linear layer or channel pad produces, in topological order
    of their first producer (the input's own channels are no group)."""
    order = graph.topological_order()
    position = {n: i for i, n in enumerate(order)}
    shapes = graph.shapes()
    parts = nx.utils.UnionFind(order)
    for u, v in graph.nx.edges:
        if graph.op(v) in _PASSES or graph.op(v) in JOINS:
            parts.union(u, v)
    groups = []
    for part in parts.to_sets():
        nodes = sorted(part, key=position.__getitem__)
        if any(graph.op(n) in _PRODUCERS for n in nodes):
            groups.append(_group(graph, nodes, shapes))
    return sorted(groups, key=lambda g: position[g.producers[0]])


def _group(graph: NetGraph, nodes: list[str], shapes: dict[str, Shape]) -> ChannelGroup:
    """The group of one connected part, ``nodes`` in topological order."""
    producers = tuple(n for n in nodes if graph.op(n) in _PRODUCERS)
    members = tuple(n for n in nodes if n not in producers)
    blocks = dict.fromkeys(producers, 1)
    for node in members:  # topological: a member's inputs come first
        first = graph.inputs(node)[0] if graph.inputs(node) else node
        grow = math.prod(shapes[first][1:]) if graph.op(node) == "flatten" else 1
        blocks[node] = blocks.get(first, 1) * grow
    readers, pads, problems = [], [], []
    for node in nodes:
        op = graph.op(node)
        if op == "input":
            problems.append("its channels are the network's input")
        elif op == "output":
            problems.append(f"its channels are the network's output (they reach {node!r})")
        elif op == "conv" and graph.spec(node).params["groups"] != 1:
            problems.append(f"grouped conv {node!r} produces them")
        elif op == "linear" and len(shapes[node]) > 1:  # channels here are the first dim
            problems.append(f"linear {node!r} maps the last of several dims (tokens)")
        elif op in JOINS and len({blocks[u] for u in graph.inputs(node)}) > 1:
            problems.append(f"{op} {node!r} joins flattened and unflattened channels")
        elif node in members and op not in _PASSES | JOINS:
            problems.append(f"{node!r} ({op}) makes them, which fixes their number")
        for v in graph.consumers(node):
            vop = graph.op(v)
            if v in blocks and vop not in _PRODUCERS:
                continue  # a member: the same channels (a producer reads them even when it
                # writes back into this group, as the conv of `bn(conv(x)) + x` does)
            if vop == "channel_pad":
                pads.append(v)
            elif vop in _PRODUCERS:
                if vop == "conv" and graph.spec(v).params["groups"] != 1:
                    problems.append(f"grouped conv {v!r} reads them")
                readers.append((v, blocks[node]))
            else:
                problems.append(f"they flow into {v!r} ({vop}), which fixes their number")
    return ChannelGroup(
        name=producers[0],
        producers=producers,
        members=members,
        joins=tuple(m for m in members if graph.op(m) in JOINS),
        readers=tuple(readers),
        pads=tuple(pads),
        width=shapes[producers[0]][0],
        blocks=blocks,
        problem=problems[0] if problems else None,
    )


def coupled_groups(graph: NetGraph) -> list[ChannelGroup]:
    """The groups with several producers or an add: the ones a single-layer narrow refuses."""
    return [g for g in channel_groups(graph) if g.coupled]


def group_of(graph: NetGraph, node: str) -> ChannelGroup:
    """The group ``node`` produces channels for (a conv, linear or channel pad node).

    >>> from grownet.zoo import build
    >>> group_of(build("cifar_resnet", depth=20, shortcut="B"), "layer2_1_conv2").producers[:2]
    ('layer2_0_conv2', 'layer2_0_downsample_0')
    """
    if node not in graph:
        raise GraphError(f"node {node!r} is not in the graph; check the id")
    for group in channel_groups(graph):
        if node in group.producers:
            return group
    raise GraphError(f"node {node!r} is a {graph.op(node)}; give a conv, linear or channel_pad")


def narrow_group(net: GraphNet, group: ChannelGroup | str, keep: int | Sequence[int]) -> GraphNet:
    """``net`` with every producer of ``group`` (or of the group node ``group`` produces)
    keeping only channels ``keep``: a count k (the first k) or the indices to keep.

    Producers keep their weight rows, batchnorms their rows and statistics, readers the input
    columns of the kept channels, exactly as :func:`grownet.graph.weights.narrow` does for one
    layer. Channel pads take the new width; their groups accept only prefixes, and a pad cannot
    shrink below its input (narrow the group it pads first).

    Example:
        >>> from grownet.zoo import build
        >>> net = GraphNet(build("cifar_resnet", depth=20, shortcut="B"))
        >>> thin = narrow_group(net, "layer2_0_conv2", 8)
        >>> thin.layers["layer2_1_conv1"].weight.shape[1], thin.shapes["layer2_2_add"][0]
        (8, 8)
    """
    graph = net.graph
    group = group_of(graph, group) if isinstance(group, str) else group
    where = f"narrow_group {group.name!r}"
    if group.problem:
        raise GraphError(f"{where}: cannot narrow these channels: {group.problem}")
    index = _keep_index(keep, group.width, where)
    padded = group.pads or any(graph.op(p) == "channel_pad" for p in group.producers)
    if padded and index != list(range(len(index))):
        raise GraphError(f"{where}: a channel_pad touches this group; keep a count (a prefix)")
    shapes = net.shapes
    g = graph.copy()
    for node in group.producers:
        spec = graph.spec(node)
        fed = shapes[graph.inputs(node)[0]][0] if spec.op == "channel_pad" else 0
        if fed > len(index):
            raise GraphError(
                f"{where}: channel_pad {node!r} cannot shrink its {fed} input channels to "
                f"{len(index)}; narrow the group it pads first"
            )
        g.set_spec(node, spec.replace(**{_PRODUCERS[spec.op]: len(index)}))
    norms = group.norms(graph)
    return remap_channels(net, g, torch.tensor(index), group.producers, norms, group.readers, where)


def zero_channels_spec(retain: float) -> LayerSpec:
    """The prefix width dropout a width sweep places where a group's channels are read."""
    return LayerSpec("width_dropout", retain=retain, mode="prefix")


def read_edges(graph: NetGraph, group: ChannelGroup) -> list[tuple[str, str]]:
    """The edges on which the group's channels are read: into each reader and channel pad, or
    into the flatten in front of one (a prefix of channels is a prefix of the unflattened
    tensor only). Zeroing channels on all of them is what narrowing the group does."""
    inside = group.blocks
    readers = {r for r, _ in group.readers} | set(group.pads)
    edges = []
    for u, v in graph.nx.edges:
        if u in inside and inside[u] == 1 and (v in readers or inside.get(v, 1) > 1):
            edges.append((u, v))
    return edges


def with_group_dropout(graph: NetGraph, group: ChannelGroup, retain: float) -> NetGraph:
    """``graph`` with a prefix width dropout at ``retain`` on each edge where ``group``'s
    channels are read (:func:`read_edges`), named ``<reader>_in_wd``."""
    g = graph.copy()
    for u, v in read_edges(graph, group):
        port = g.nx.edges[u, v]["port"]
        g.nx.remove_edge(u, v)
        wd = g.add(f"{v}_in_wd", zero_channels_spec(retain), [u])
        g.nx.add_edge(wd, v, port=port)
    return g
