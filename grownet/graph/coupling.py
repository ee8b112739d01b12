"""Coupled channels: the layers whose widths must change together, and narrowing them as one.

An add (``add``, ``gated_add``, ``dropin``) sums its inputs channel by channel, so every layer
whose channels reach it must keep the same width, and channel ``c`` of one is channel ``c`` of
all; a ``mul`` (a squeeze-and-excitation gate of shape (C, 1, 1) scaling its feature map, or a
product of two feature maps) couples its inputs the same way. :func:`channel_groups` finds
these groups the way Torch-Pruning's dependency graph does: join every node to its consumer
when the consumer keeps the channels (batchnorm, layer norm, activations, pools, dropout,
identity, flatten, global or adaptive average pooling, permutes, a learned per-channel
``param``, a depthwise conv, and the joins themselves); a conv, linear or ``channel_pad``
starts new channels. Each connected part is one :class:`ChannelGroup`: its *producers* (the
convs and linear layers, 1x1 projection shortcuts and SE excitation convs included, and
channel pads whose output channels it is), its *members* (what carries the channels) and its
*readers* (the convs and linear layers, and channel pads, that read them).

Some members hold a tensor per channel, the group's *carriers*: batchnorms, a depthwise conv
(``groups == in == out`` channels: each channel its own filter, so a MobileNet or EfficientNet
expansion and the depthwise conv after it are one group), a grouped conv with as many output
channels as input (ResNeXt's and RegNet's: each group maps its own channels, so the layer
before it and the grouped conv are one group, narrowed a whole conv group at a time: its
:attr:`ChannelGroup.quantum`), a layer norm's affine weights and a layer scale (a ``param``
of shape (C, 1, 1), or (C,) on channels-last tokens). Narrowing keeps their entries of the
kept channels, as a producer's rows.

The channels need not be a tensor's first dimension: a linear layer maps the last one, and
a permute moves them (ConvNeXt's block runs its layer norm and linear layers channels-last).
Each node's channel dimension is tracked; a layer that works on another dimension than the
channels (a batchnorm or pool on channels-last tensors, a layer norm not over them, a conv
reading them from the last dimension) stops the group. Where they are read channels-last,
:func:`with_group_dropout` and :func:`on_edges` put the zeroing between a permute to
channels-first and its inverse. A layer norm normalises over all its channels, so a narrowed
one normalises over the kept ones only (the function is then kept only approximately, every
other member keeps the kept channels' function exactly); a sweep's norms normalise the same
prefix (:func:`with_group_dropout`, :mod:`grownet.layers.prefix_norm`), so what a sweep
measures is what narrowing leaves. A transformer's residual stream is one group: its token
table produces it (an ``embedding``'s columns), every attention layer reads it through its
input projection and writes it through its output projection, every norm carries it, and a
head tied to the table reads it.

A ``channel_pad`` shortcut (the zoo ResNets' option A) reads the stage before and produces the
stage after: its first channels are the earlier stage's, the rest zeros. Narrowing both stages
to prefixes keeps that: a pad to ``m`` channels of the earlier stage's first ``k`` holds what
the full pad held in its first ``m`` (zeros from ``k`` on once the earlier channels ``k..`` are
gone), provided ``m >= k``; so a stage is narrowed after the stage it pads, never below it.

A concat (DenseNet, Inception, GoogLeNet, SqueezeNet's fire modules) holds each input's
channels at an offset, one input after another, so its output carries several groups at once.
The union-find above never joins across a concat: the concat and what keeps its channels after
it (DenseNet's batchnorm and ReLU, a pool, a later concat's input) form a *concat part* of their
own, whose layout :func:`_layouts` computes in topological order (a concat of concats nests the
offsets). Each group then owns, besides its own part, every concat part that holds it, at the
offset ``o`` where its channels start there (:attr:`ChannelGroup.offsets`): one node belongs to
several groups at several offsets. Narrowing keeps, at such a node, channels ``o + index`` of
the group and every channel of the others: a batchnorm after the concat its rows, a reader its
columns, through any number of concats. A group reaching a concat is coupled; so that offsets
stay unambiguous it cannot narrow when it reaches one concat twice, when an add or product joins
a concat's output to other channels, or when it is flattened or on another dimension there.

A width sweep's and a width growth's mixers keep or mix in a prefix of the whole tensor they
sit on, so behind a concat they would hit other groups' channels; they go on the edges into the
concat instead (:func:`read_edges`), which is what narrowing does provided every op after the
concat keeps a channel of zeros at zero (ReLU, pools, dropout, a later concat: Inception,
GoogLeNet, SqueezeNet). A batchnorm after it (DenseNet) turns zeros into constants, so there
(:attr:`ChannelGroup.zeroed_behind`) the mixers go on the edges into the readers behind the
concats instead, over the span of channels the group holds there (:func:`zeroing_edges`): a
batchnorm never mixes channels, so what it makes of the group's channels never reaches
another group's.

A group cannot be narrowed (:attr:`ChannelGroup.problem` says why) when its channels are the
input's or the output's, reach a resize or another op with a fixed shape, or meet a grouped
conv whose output width differs from its input's (a prefix of its input would not be a prefix
of its output).

Example:
    >>> from grownet.zoo import build
    >>> groups = coupled_groups(build("cifar_resnet", depth=20, shortcut="B"))
    >>> [(g.name, len(g.producers), g.width) for g in groups]
    [('conv1', 4, 16), ('layer2_0_conv2', 4, 32), ('layer3_0_conv2', 4, 64)]
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import torch

from grownet.graph.executor import GraphNet
from grownet.graph.netgraph import NetGraph
from grownet.graph.ops import NORMS, head_size
from grownet.graph.spec import GraphError, LayerSpec, Shape
from grownet.graph.weights import _CHANNELWISE, LAST_DIM, keep_index, remap_channels

__all__ = [
    "ChannelGroup",
    "channel_groups",
    "coupled_groups",
    "group_norms",
    "group_of",
    "narrow_group",
    "on_edges",
    "resized",
    "zeroing_edges",
]

JOINS = frozenset({"add", "gated_add", "dropin", "mul"})
# what starts new channels, with the parameter that sets their number (an attention layer's
# output has its input's width: it reads one group and writes another, or the same one)
_PRODUCERS = {"conv": "out_channels", "linear": "out_features", "channel_pad": "channels",
              "embedding": "out_features", "attention": None}  # fmt: skip
_PASSES = _CHANNELWISE | {"output"}  # the output joins its part, which then cannot narrow
# channel-wise wherever the channels are; the rest of _PASSES work on the first dimension
_ANY_DIM = frozenset({"relu", "activation", "dropout", "identity", "output"})
# a width DropIn mid-growth (DenseNet's sit behind concats, over another group's span): it
# passes every channel outside its span as it is, so a later group of the same stage crosses it
_MIXERS = frozenset({"width_dropin"})
_KEEPS = _PASSES | JOINS | _MIXERS | {*NORMS, "param", "permute"}
# what keeps a channel of zeros at zero: after a concat, only these let a mixer before it zero
# what narrowing removes
_KEEPS_ZERO = frozenset(
    {"relu", "maxpool", "avgpool", "dropout", "width_dropout", "identity", "flatten"}
    | {"global_avgpool", "adaptive_avgpool", "concat"} | _MIXERS
)


def _groupwise(graph: NetGraph, node: str, shapes: dict[str, Shape]) -> bool:
    """A grouped conv whose every group maps its input channels to as many output channels
    (``in_channels == out_channels``, ``groups > 1``): a depthwise conv (a channel a group),
    ResNeXt's and RegNet's grouped convs. Its channels are its input's, a whole group at a
    time: it carries them (:attr:`ChannelGroup.quantum`)."""
    spec = graph.spec(node)
    if spec.op != "conv":
        return False
    fed = shapes[graph.inputs(node)[0]][0]
    return spec.params["groups"] > 1 and spec.params["out_channels"] == fed


def _produces(graph: NetGraph, node: str, shapes: dict[str, Shape]) -> bool:
    return graph.op(node) in _PRODUCERS and not _groupwise(graph, node, shapes)


def _channel_dims(graph: NetGraph, order: list[str], shapes: dict[str, Shape]) -> dict[str, int]:
    """Each node's channel dimension (per sample): a conv's first, a linear layer's last,
    moved by permutes, shifted by a select of an earlier dimension (a ViT's class token
    taken from its tokens), kept by everything else that keeps the rank (a join: its
    full-shaped input's)."""
    dims: dict[str, int] = {}
    for node in order:
        spec, ins = graph.spec(node), graph.inputs(node)
        if spec.op in LAST_DIM:
            dims[node] = len(shapes[node]) - 1
        elif not ins or _produces(graph, node, shapes):
            dims[node] = 0
        elif spec.op == "select":
            dim = dims[ins[0]]
            dims[node] = dim - (dim > spec.params["dim"]) if dim != spec.params["dim"] else 0
        else:
            first = next((u for u in ins if shapes[u] == shapes[node]), ins[0])
            dim = dims[first] if dims[first] < len(shapes[node]) else 0
            dims[node] = spec.params["dims"].index(dim) if spec.op == "permute" else dim
    return dims


def _keeps_first(shapes: dict[str, Shape], u: str, v: str, dims: dict[str, int]) -> bool:
    """Whether the reshape ``v`` keeps ``u``'s channels on the first dimension, each with its
    own features (a ViT's patch grid flattened to tokens, (C, H, W) -> (C, H W)): a reshape
    that keeps the first dimension's size moves no feature from one channel to another."""
    return dims[u] == 0 and shapes[u][0] == shapes[v][0]


def _joined(
    graph: NetGraph, u: str, v: str, shapes: dict[str, Shape], dims: dict[str, int]
) -> bool:
    """Whether ``v`` keeps the channels ``u`` feeds it (a product's broadcast factor, such as
    a spatial gate of one channel, does not: only its shape reaches the output)."""
    op = graph.op(v)
    if op == "reshape":
        return _keeps_first(shapes, u, v, dims)
    if op == "select":  # of a token, not of a channel
        return graph.spec(v).params["dim"] != dims[u]
    if op not in _KEEPS and not _groupwise(graph, v, shapes):
        return False
    if op != "mul":
        return True
    dim = dims[v]
    return len(shapes[u]) == len(shapes[v]) and shapes[u][dim] == shapes[v][dim]


@dataclass(frozen=True)
class ChannelGroup:
    """Layers sharing one set of channels (see the module docstring).

    ``readers`` pairs each reading conv or linear layer with its block size (features per
    channel: H*W behind a flatten, else 1); ``pads`` are the channel pads that read the group;
    ``carriers`` pairs each member holding a tensor per channel with the tensor dimension
    its channels are on; ``blocks`` gives the block size at every producer and member, and
    ``dims`` the dimension (per sample) the channels are on there. ``offsets``: where the
    channels start among the channels of each node that holds them behind a concat (members,
    and readers' input columns); every other node holds them from 0. ``concats``: the concats
    they reach. ``coupled``: more than one producer, a member other than a batchnorm or a
    channel-wise op (an add, a depthwise conv, a permute, a concat, ...), or channels not on
    the first dimension: what a single-layer narrow refuses, or a width sweep's single-layer
    width dropout would misplace. ``zeroed_behind``: an op after one of its concats does not
    keep zeros at zero (a DenseNet's batchnorm), so a sweep's or growth's mixers go on the
    edges into the readers behind the concats (:func:`zeroing_edges`). ``quantum``: the
    channels a grouped conv among the members takes at a time (1: any number).
    """

    name: str
    producers: tuple[str, ...]
    members: tuple[str, ...]
    joins: tuple[str, ...]
    readers: tuple[tuple[str, int], ...]
    pads: tuple[str, ...]
    carriers: tuple[tuple[str, int], ...]
    width: int
    blocks: dict[str, int]
    dims: dict[str, int]
    offsets: dict[str, int]
    concats: tuple[str, ...]
    coupled: bool
    problem: str | None
    zeroed_behind: bool = False
    quantum: int = 1

    def rows(self) -> list[tuple[str, int, int]]:
        """The carriers as :func:`grownet.graph.weights.remap_channels` takes them:
        (node, block size, tensor dimension)."""
        return [(node, self.blocks[node], dim) for node, dim in self.carriers]


# The groups of the last few graphs, by content: a sweep asks for one group after another of
# the same graph (a DenseNet's 120), and each analysis walks the whole graph.
_RECENT: OrderedDict[str, tuple[ChannelGroup, ...]] = OrderedDict()
_KEEP = 8


def channel_groups(graph: NetGraph) -> list[ChannelGroup]:
    """Every set of channels a conv, linear layer or channel pad produces, in topological order
    of their first producer (the input's own channels are no group)."""
    key = hashlib.blake2b(json.dumps(graph.to_dict(), sort_keys=True, default=repr).encode(),
                          digest_size=16).hexdigest()  # fmt: skip
    if key not in _RECENT:
        _RECENT[key] = tuple(_analysed(graph))
        while len(_RECENT) > _KEEP:
            _RECENT.popitem(last=False)
    _RECENT.move_to_end(key)
    return list(_RECENT[key])


def _analysed(graph: NetGraph) -> list[ChannelGroup]:
    order = graph.topological_order()
    position = {n: i for i, n in enumerate(order)}
    shapes = graph.shapes()
    dims = _channel_dims(graph, order, shapes)
    parts = nx.utils.UnionFind(order)
    for u, v in graph.nx.edges:
        if _joined(graph, u, v, shapes, dims):
            parts.union(u, v)
    nodes_of: dict[str, list[str]] = {}
    for node in order:
        nodes_of.setdefault(parts[node], []).append(node)
    roots = [r for r, nodes in nodes_of.items() if any(_produces(graph, n, shapes) for n in nodes)]
    placed, blocked = _layouts(graph, order, parts, set(roots), shapes, dims)
    groups = []
    for root in roots:
        behind = {n: at for part, at in placed.get(root, []) for n in nodes_of[part]}
        groups.append(_group(graph, nodes_of[root], behind, blocked.get(root), shapes, dims))
    return sorted(groups, key=lambda g: position[g.producers[0]])


def _layouts(
    graph: NetGraph,
    order: list[str],
    parts: nx.utils.UnionFind,
    roots: set[str],
    shapes: dict[str, Shape],
    dims: dict[str, int],
) -> tuple[dict[str, list[tuple[str, int]]], dict[str, str]]:
    """Where each group's channels sit behind concats, by part (union-find root): per group,
    the concat parts holding them, each with the offset they start at; and per group the
    first reason those offsets are unusable, if any."""
    layout: dict[str, list[tuple[str | None, int]]] = {}  # a concat part's (group, offset)s
    placed: dict[str, list[tuple[str, int]]] = {}
    blocked: dict[str, str] = {}
    fixed = {parts[n] for n in order if graph.op(n) == "input"} | roots
    for node in order:
        if graph.op(node) != "concat":
            continue
        part, at = parts[node], 0
        # an add or product joining the concat's output to other channels (a producer's, the
        # input's, another concat's) would couple each group to a slice of those
        joined = part in fixed or part in layout
        segments: list[tuple[str | None, int]] = []
        for u in graph.inputs(node):
            inner = layout.get(parts[u], [(parts[u] if parts[u] in roots else None, 0)])
            segments += [(group, at + o) for group, o in inner]
            for group, _ in inner:
                if group is not None and dims[u] != 0:
                    blocked.setdefault(group, f"concat {node!r} joins them on another dimension")
            at += shapes[u][0]
        for group, o in segments:
            if group is None:
                continue
            if joined:
                blocked.setdefault(group, f"they reach concat {node!r}, whose output is joined "
                                   "to other channels by an add or product")  # fmt: skip
            elif any(p == part for p, _ in placed.get(group, [])):
                blocked.setdefault(group, f"they reach concat {node!r} twice")
            else:
                placed.setdefault(group, []).append((part, o))
        layout.setdefault(part, segments)
    return placed, blocked


def _carrier_dim(graph: NetGraph, node: str, shapes: dict[str, Shape], dim: int) -> int | None:
    """The dimension of ``node``'s tensors that holds one entry per channel, or None when it
    holds none (an activation, or a layer norm without affine weights, or a ``param`` that
    broadcasts over the channels)."""
    spec = graph.spec(node)
    if spec.op in ("batchnorm", "conv"):  # a member conv is groupwise
        return 0
    if spec.op in NORMS:
        return 0 if spec.params["affine"] else None
    if spec.op == "param":
        shape = spec.params["shape"]
        at = dim - (len(shapes[node]) - len(shape))  # a param broadcasts from the right
        return at if at >= 0 and shape[at] == shapes[node][dim] > 1 else None
    return None


def _member_problem(
    graph: NetGraph, node: str, part: set[str], shapes: dict[str, Shape], dims: dict[str, int]
) -> str | None:
    """Why the member ``node`` cannot carry the group's channels, if it cannot."""
    op, dim = graph.op(node), dims[node]
    if op in JOINS:
        ins = [u for u in graph.inputs(node) if u in part]
        if len({dims[u] for u in ins}) > 1:
            return f"{op} {node!r} joins them on different dimensions"
        return None
    if op in NORMS:
        if dim != len(shapes[node]) - 1:
            return f"{op} {node!r} normalizes dimension {len(shapes[node]) - 1}, not them"
        return None
    if op == "param":
        if graph.spec(node).params["mode"] == "prepend" and dim == 0:
            return f"param {node!r} prepends to them"
        return None
    if op in _PASSES - _ANY_DIM and dim != 0:
        return f"{node!r} ({op}) works on dimension 0, they are on dimension {dim}"
    if op == "reshape":
        (u,) = graph.inputs(node)
        ok = u in part and _keeps_first(shapes, u, node, dims)
        return None if ok else f"reshape {node!r} moves them"
    if op == "select":
        (u,) = graph.inputs(node)
        return None if _joined(graph, u, node, shapes, dims) else f"select {node!r} picks one"
    if op not in _KEEPS and not _groupwise(graph, node, shapes):
        return f"{node!r} ({op}) makes them, which fixes their number"
    return None


def _mixes_them(graph: NetGraph, node: str, at: int | None, width: int) -> bool:
    """Whether the width DropIn ``node`` mixes the group's own ``width`` channels (they start
    at ``at`` behind a concat, else at 0): one without a span mixes every channel it sees;
    one with a span only those it spans."""
    params = graph.spec(node).params
    if not params["span"]:
        return True
    start = at or 0
    return start < params["offset"] + params["span"] and params["offset"] < start + width


def _reader_problem(
    graph: NetGraph, node: str, reader: str, shapes: dict[str, Shape], dim: int
) -> str | None:
    """Why ``reader`` (a conv, linear or channel pad outside the group) cannot read the
    group's channels from ``node``, if it cannot."""
    spec = graph.spec(reader)
    if spec.op == "conv" and spec.params["groups"] != 1:
        return f"grouped conv {reader!r} reads them"
    reads = len(shapes[node]) - 1 if spec.op in LAST_DIM else 0
    if dim != reads:
        return f"{spec.op} {reader!r} reads dimension {reads}, they are on dimension {dim}"
    return None


def _group(
    graph: NetGraph,
    own: list[str],
    behind: dict[str, int],
    blocked: str | None,
    shapes: dict[str, Shape],
    dims: dict[str, int],
) -> ChannelGroup:
    """The group of one connected part, ``own`` in topological order, whose channels also sit
    in the concat parts' nodes ``behind`` at the offsets given (:func:`_layouts`; ``blocked``:
    why those offsets are unusable)."""
    nodes = [*own, *behind]  # each concat part in topological order, after what feeds it
    part = set(nodes)
    producers = tuple(n for n in nodes if _produces(graph, n, shapes))
    width = shapes[producers[0]][dims[producers[0]]]
    members = tuple(n for n in nodes if n not in producers)
    blocks = dict.fromkeys(producers, 1)
    for node in members:  # topological: a member's inputs come first
        # a concat counts its own entries (inputs reaching it flattened are refused below)
        ins = [] if graph.op(node) == "concat" else graph.inputs(node)
        first = next((u for u in ins if u in part), node)
        grow = math.prod(shapes[first][1:]) if graph.op(node) == "flatten" else 1
        blocks[node] = blocks.get(first, 1) * grow
    readers, pads, problems = [], [], []
    offsets = dict(behind)  # and each reader's, of the columns it reads them in
    for node in nodes:
        op = graph.op(node)
        if op == "input":
            problems.append("its channels are the network's input")
        elif op == "output":
            problems.append(f"its channels are the network's output (they reach {node!r})")
        elif node in producers and op == "conv" and graph.spec(node).params["groups"] != 1:
            problems.append(f"grouped conv {node!r} produces them")
        elif op in JOINS and len({blocks[u] for u in graph.inputs(node) if u in part}) > 1:
            problems.append(f"{op} {node!r} joins flattened and unflattened channels")
        elif op == "concat":
            if node not in behind:  # its part holds a producer: an add joins it to channels
                problems.append(f"concat {node!r}'s output is joined to them by an add or product")
        elif op in _MIXERS and _mixes_them(graph, node, behind.get(node), width):
            problems.append(f"{op} {node!r} is still mixing in an earlier widening of them; "
                            "collapse it first")  # fmt: skip
        elif node in members and (why := _member_problem(graph, node, part, shapes, dims)):
            problems.append(why)
        at = behind.get(node)
        for v in graph.consumers(node):
            vop = graph.op(v)
            if vop == "concat" and blocks[node] != 1:
                problems.append(f"they reach concat {v!r} flattened")
            if (v in part and v not in producers) or vop == "concat":
                continue  # a member: the same channels (a producer reads them even when it
                # writes back into this group, as the conv of `bn(conv(x)) + x` does); a
                # concat's part is a member where _layouts placed them, else `blocked` says why
            if vop == "channel_pad":
                if at is not None:
                    problems.append(f"channel_pad {v!r} reads them behind a concat")
                pads.append(v)
            elif vop in _PRODUCERS:
                if why := _reader_problem(graph, node, v, shapes, dims[node]):
                    problems.append(why)
                if at is not None and v in producers:
                    problems.append(f"{v!r} reads them behind a concat and produces them")
                readers.append((v, blocks[node]))
                if at is not None:
                    offsets[v] = at
            elif not _joined(graph, node, v, shapes, dims):
                problems.append(f"they flow into {v!r} ({vop}), which fixes their number")
    carriers = tuple(
        (n, at) for n in members if (at := _carrier_dim(graph, n, shapes, dims[n])) is not None
    )
    problem = problems[0] if problems else blocked
    breaks = any(graph.op(n) not in _KEEPS_ZERO for n in behind)
    return ChannelGroup(
        name=producers[0],
        producers=producers,
        members=members,
        joins=tuple(m for m in members if graph.op(m) in JOINS),
        readers=tuple(readers),
        pads=tuple(pads),
        carriers=carriers,
        width=width,
        blocks=blocks,
        dims={n: dims[n] for n in nodes},
        offsets=offsets,
        concats=tuple(n for n in behind if graph.op(n) == "concat"),
        coupled=len(producers) > 1
        or any(graph.op(m) not in _PASSES for m in members)
        or any(dims[n] for n in nodes),
        problem=problem,
        zeroed_behind=breaks and not problem,
        quantum=math.lcm(1, *(graph.spec(n).params["out_channels"] // graph.spec(n).params["groups"]
                              for n in members if _groupwise(graph, n, shapes))),
    )


def coupled_groups(graph: NetGraph) -> list[ChannelGroup]:
    """The coupled groups (:attr:`ChannelGroup.coupled`): the ones a single-layer narrow
    refuses."""
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


def resized(graph: NetGraph, group: ChannelGroup, width: int) -> NetGraph:
    """A copy of ``graph`` whose specs give ``group`` ``width`` channels: its producers'
    widths, its depthwise convs' channels and groups, its per-channel params' shapes. An
    attention layer's heads keep their size (its ``head_dim``, which would otherwise follow
    the width it reads)."""
    g = graph.copy()
    for node in {*group.producers, *(r for r, _ in group.readers)}:
        spec = graph.spec(node)
        if spec.op == "attention" and not spec.params["head_dim"]:
            # it reads as many features as it writes: the group's, whichever side it is on
            g.set_spec(node, spec.replace(head_dim=head_size(spec.params, group.width)))
    for node in group.producers:
        spec = g.spec(node)
        if _PRODUCERS[spec.op]:
            g.set_spec(node, spec.replace(**{_PRODUCERS[spec.op]: width}))
    for node in group.members:
        spec = graph.spec(node)
        if spec.op == "reshape":  # keeping them first (see _keeps_first)
            g.set_spec(node, spec.replace(shape=[width, *spec.params["shape"][1:]]))
        elif spec.params.get("span"):  # another group's mixer or zeroing behind a concat
            at, start = group.offsets.get(node, 0), spec.params["offset"]
            if at < start:  # this group's channels come first: the span moves with them
                g.set_spec(node, spec.replace(offset=start + width - group.width))
    for node, at in group.carriers:
        spec = graph.spec(node)
        if spec.op == "conv":  # groupwise: whole groups of as many channels as before
            per_group = spec.params["out_channels"] // spec.params["groups"]
            g.set_spec(node, spec.replace(out_channels=width, groups=width // per_group))
        elif spec.op == "param":
            shape = list(spec.params["shape"])
            shape[at] = width
            g.set_spec(node, spec.replace(shape=shape))
    return g


def narrow_group(net: GraphNet, group: ChannelGroup | str, keep: int | Sequence[int]) -> GraphNet:
    """``net`` with every producer of ``group`` (or of the group node ``group`` produces)
    keeping only channels ``keep``: a count k (the first k) or the indices to keep.

    Producers keep their weight rows, carriers (batchnorms with their statistics, depthwise
    convs, layer norms, layer scales) their entries, readers the input columns of the kept
    channels, exactly as :func:`grownet.graph.weights.narrow` does for one layer; behind a
    concat they keep the other groups' channels around the group's (see the module
    docstring). Channel pads take the new width; their groups accept only prefixes, and a pad
    cannot shrink below its input (narrow the group it pads first).

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
    index = keep_index(keep, group.width, where)
    padded = group.pads or any(graph.op(p) == "channel_pad" for p in group.producers)
    if padded and index != list(range(len(index))):
        raise GraphError(f"{where}: a channel_pad touches this group; keep a count (a prefix)")
    if group.quantum > 1 and (index != list(range(len(index))) or len(index) % group.quantum):
        raise GraphError(f"{where}: a grouped conv takes these channels {group.quantum} at a "
                         f"time; keep a multiple of {group.quantum} (a prefix), got "
                         f"{len(index)}")  # fmt: skip
    shapes = net.shapes
    for node in group.producers:
        fed = shapes[graph.inputs(node)[0]][0] if graph.op(node) == "channel_pad" else 0
        if fed > len(index):
            raise GraphError(
                f"{where}: channel_pad {node!r} cannot shrink its {fed} input channels to "
                f"{len(index)}; narrow the group it pads first"
            )
    g = resized(graph, group, len(index))
    index_t = torch.tensor(index)
    return remap_channels(
        net, g, index_t, group.producers, group.rows(), group.readers, where, offsets=group.offsets
    )


def zero_channels_spec(retain: float, quantum: int = 1) -> LayerSpec:
    """The prefix width dropout a width sweep places where a group's channels are read (whole
    blocks of ``quantum`` channels: :attr:`ChannelGroup.quantum`)."""
    return LayerSpec("width_dropout", retain=retain, mode="prefix", quantum=quantum)


def read_edges(graph: NetGraph, group: ChannelGroup) -> list[tuple[str, str]]:
    """The edges on which the group's channels are read: into each reader and channel pad, or
    into the flatten in front of one (a prefix of channels is a prefix of the unflattened
    tensor only), or into a concat (behind it they sit among other channels; ops there keep
    zeros at zero, unless :attr:`ChannelGroup.zeroed_behind`). Zeroing channels on all of them
    is what narrowing the group does. Refused where that cannot be done."""
    if group.problem:
        raise GraphError(f"group {group.name!r}: cannot zero its channels: {group.problem}")
    inside = {n: b for n, b in group.blocks.items() if n not in group.offsets}
    into = {r for r, _ in group.readers} | set(group.pads) | set(group.concats)
    edges = []
    for u, v in graph.nx.edges:
        if u in inside and inside[u] == 1 and (v in into or inside.get(v, 1) > 1):
            edges.append((u, v))
    return edges


def zeroing_edges(graph: NetGraph, group: ChannelGroup) -> list[tuple[str, str, int | None]]:
    """Where a width sweep zeroes ``group``'s channels: :func:`read_edges` (offset None), or,
    for a group whose concats a batchnorm follows (DenseNet:
    :attr:`ChannelGroup.zeroed_behind`), the edges into the readers of its own channels and
    into each reader behind its concats, with the offset its channels start at there (a
    per-channel op such as that batchnorm never mixes them with the others, so zeroing them
    at the readers is what narrowing leaves). Refused where neither can be done."""
    if not group.zeroed_behind:
        return [(u, v, None) for u, v in read_edges(graph, group)]
    into = {r for r, _ in group.readers} | set(group.pads)
    edges: list[tuple[str, str, int | None]] = []
    for u, v in graph.nx.edges:
        if u not in group.blocks or group.blocks[u] != 1 or graph.op(v) == "concat":
            continue
        if v in into or (v in group.blocks and group.blocks[v] > 1):  # into a flatten
            edges.append((u, v, group.offsets.get(u)))
    return edges


def on_edges(
    graph: NetGraph,
    group: ChannelGroup,
    edges: list[tuple[str, str, LayerSpec]],
    suffix: str,
    *,
    base: NetGraph | None = None,
    split: dict[tuple[str, str], str] | None = None,
) -> NetGraph:
    """``graph`` with a node of each edge's spec on it, named ``<reader>_<suffix>``, or on an
    edge into a concat ``<concat>_<source>_<suffix>`` (a concat reads several groups), or,
    spanning the group's channels among others behind a concat, ``<reader>_<group>_<suffix>``.
    Width dropout and width DropIn work on the first dimension, so where the channels are on
    another one the node sits between a permute bringing them first (``<name>_first``) and
    its inverse (``<name>_back``). ``base``: the graph ``group`` and ``edges`` were found
    on, of which ``graph`` is a copy with nodes already put on some edges, ``split`` saying
    the last node each such edge now runs through (updated here): a sweep of many groups
    analyses the network once, not once per group."""
    base = base or graph
    split = {} if split is None else split
    g = graph.copy()
    shapes = base.shapes()
    for u, v, spec in edges:
        source = split.get((u, v), u)
        port = g.nx.edges[source, v]["port"]
        g.nx.remove_edge(source, v)
        if base.op(v) == "concat":
            name = f"{v}_{u}_{suffix}"
        else:
            name = f"{v}_{group.name}_{suffix}" if spec.params.get("span") else f"{v}_{suffix}"
        dim = group.dims[u]
        if dim == 0:
            last = g.add(name, spec, [source])
        else:
            order = [dim, *(d for d in range(len(shapes[u])) if d != dim)]
            back = [order.index(d) for d in range(len(order))]
            first = g.add(f"{name}_first", LayerSpec("permute", dims=order), [source])
            last = g.add(
                f"{name}_back", LayerSpec("permute", dims=back), [g.add(name, spec, [first])]
            )
        g.nx.add_edge(last, v, port=port)
        split[u, v] = last
    return g


def group_norms(graph: NetGraph, group: ChannelGroup) -> list[str]:
    """The layer and RMS norms among ``group``'s members: each reads all of its channels, so
    a sweep or growth sets the prefix it normalises (:mod:`grownet.layers.prefix_norm`)."""
    return [n for n in group.members if graph.op(n) in NORMS]


def with_group_dropout(
    graph: NetGraph,
    group: ChannelGroup,
    retain: float,
    *,
    base: NetGraph | None = None,
    split: dict[tuple[str, str], str] | None = None,
) -> NetGraph:
    """``graph`` with a prefix width dropout at ``retain`` on each edge where ``group``'s
    channels are zeroed (:func:`zeroing_edges`, :func:`on_edges`), named ``<reader>_in_wd``,
    and its norms normalising the same prefix: what narrowing the group computes, exactly.
    ``base`` and ``split``: ``group`` was found on ``base``, which ``graph`` extends (see
    :func:`on_edges`)."""
    found = base or graph
    spec = zero_channels_spec(retain, group.quantum)
    edges = [(u, v, spec if at is None else spec.replace(offset=at, span=group.width))
             for u, v, at in zeroing_edges(found, group)]  # fmt: skip
    g = on_edges(graph, group, edges, "in_wd", base=found, split=split)
    for node in group_norms(found, group):
        g.set_spec(node, found.spec(node).replace(retain=retain))
    return g
