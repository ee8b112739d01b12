"""Width surgery that carries weights: :func:`narrow` and :func:`widen` a trained :class:`GraphNet`.

Both remap the output channels (or features) of one conv or linear node through an index
``idx``: new channel ``j`` is old channel ``idx[j]``. The node's weight rows and bias, every
batchnorm the channels pass through (affine and running statistics) and the input columns of
every conv or linear that reads them are remapped alike; a flatten in between turns channel
``c`` into the feature block ``c*H*W .. (c+1)*H*W - 1``. Channel-wise ops in between (ReLU and
the other activations, pooling, LRN, dropout, width dropout, identity, global and adaptive
average pooling) carry the channels through unchanged. Every other node untouched keeps its
module (and optimizer state).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from grownet.graph.executor import GraphNet
from grownet.graph.netgraph import NetGraph
from grownet.graph.ops import OPS
from grownet.graph.spec import GraphError, LayerSpec, Shape

__all__ = ["check_narrowable", "narrow", "producer_weight", "remap_channels", "widen"]

_CHANNELWISE = frozenset(
    {
        "relu",
        "maxpool",
        "avgpool",
        "lrn",
        "dropout",
        "width_dropout",
        "identity",
        "batchnorm",
        "flatten",
        "global_avgpool",
        "adaptive_avgpool",
        "activation",
    }
)
_WIDTH_KEY = {"conv": "out_channels", "linear": "out_features"}
# Where a producer's output channels sit in its tensors (the other weighted producers: a conv's
# or linear layer's rows and bias), and which tensor's columns (dimension 1) a reader reads
# them through: an embedding's table holds a token's features in its columns, an attention
# layer writes through its output projection and reads through its input projection.
_ROWS = {"embedding": {"weight": 1}, "attention": {"out_proj.weight": 0, "out_proj.bias": 0}}
_COLUMNS = {"attention": "in_proj_weight"}
# the producers whose channels are their output's last dimension, not its first
LAST_DIM = frozenset({"linear", *_ROWS})


def producer_weight(graph: NetGraph, node: str) -> tuple[str, int]:
    """The weight (its state dict key) holding producer ``node``'s output channels, and the
    dimension they are on there."""
    return next(iter(_ROWS.get(graph.op(node), {"weight": 0}).items()))


def _target(graph: NetGraph, node: str, where: str) -> int:
    if node not in graph:
        raise GraphError(f"{where}: node {node!r} is not in the graph; check the id")
    spec = graph.spec(node)
    if spec.op not in _WIDTH_KEY:
        raise GraphError(f"{where}: node {node!r} is a {spec.op}; give a conv or linear node")
    if spec.op == "conv" and spec.params["groups"] != 1:
        raise GraphError(
            f"{where}: node {node!r} is a grouped conv; grouped convs are not supported"
        )
    return spec.params[_WIDTH_KEY[spec.op]]


def _breaks_function(spec: LayerSpec) -> str | None:
    if spec.op == "lrn" and spec.params["region"] == "across":
        return "normalizes across channels"
    if spec.op == "width_dropout" and spec.params["mode"] == "prefix" and spec.params["retain"] < 1:
        return "keeps a prefix that depends on the channel count"
    return None


def _trace(
    graph: NetGraph, node: str, shapes: dict[str, Shape], where: str, *, preserve: bool
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Batchnorms and readers ``node``'s channels reach, each with one channel's block size."""
    norms: list[tuple[str, int]] = []
    readers: list[tuple[str, int]] = []
    stack = [(v, 1, node) for v in graph.consumers(node)]
    while stack:
        v, block, src = stack.pop()
        spec = graph.spec(v)
        if spec.op in _WIDTH_KEY:
            if spec.op == "conv" and spec.params["groups"] != 1:
                raise GraphError(
                    f"{where}: the channels of {node!r} flow into grouped conv {v!r}; "
                    "grouped convs are not supported"
                )
            readers.append((v, block))
            continue
        if spec.op == "output":
            raise GraphError(
                f"{where}: the channels of {node!r} are the network's output (they reach {v!r}); "
                "changing them would change what the network returns"
            )
        if len(graph.inputs(v)) > 1:
            others = [u for u in graph.inputs(v) if u != src]
            raise GraphError(
                f"{where}: the channels of {node!r} flow into {v!r} ({spec.op}), whose other "
                f"input {others[0]!r} would then mismatch; not supported"
            )
        if spec.op not in _CHANNELWISE:
            raise GraphError(
                f"{where}: the channels of {node!r} flow into {v!r} ({spec.op}), whose output "
                "shape is fixed; not supported"
            )
        why = _breaks_function(spec) if preserve else None
        if why:
            raise GraphError(
                f"{where}: the channels of {node!r} flow into {v!r} ({spec.op}), which {why}; "
                "widening would not preserve the function"
            )
        if spec.op == "batchnorm":
            norms.append((v, block))
        if spec.op == "flatten":
            block *= math.prod(shapes[src][1:])
        stack.extend((w, block, v) for w in graph.consumers(v))
    return norms, readers


def _expand(index: Tensor, block: int) -> Tensor:
    """Channel indices to feature indices when each channel spans ``block`` features."""
    if block == 1:
        return index
    return (index[:, None] * block + torch.arange(block, device=index.device)).flatten()


def _spliced(index: Tensor, offset: int, width: int, total: int) -> Tensor:
    """Channel indices into ``total`` channels holding a group's ``width`` channels from
    ``offset`` on (behind a concat): the others kept in place, the group's through ``index``."""
    before, after = torch.arange(offset), torch.arange(offset + width, total)
    return torch.cat([before, index + offset, after])


def _selected(state: dict[str, Tensor], rows: Tensor, dim: int) -> dict[str, Tensor]:
    """``state`` with entries ``rows`` along ``dim`` of each tensor that has it (a batchnorm's
    step count has not)."""
    return {
        k: v.index_select(dim, rows.to(v.device)) if v.dim() > dim else v for k, v in state.items()
    }


def _build_like(graph: NetGraph, node: str, shapes: dict[str, Shape], old: nn.Module) -> nn.Module:
    spec = graph.spec(node)
    ref = next(old.parameters())
    with torch.device(ref.device):
        module = OPS[spec.op].build(spec.params, [shapes[u] for u in graph.inputs(node)])
    module.to(dtype=ref.dtype).train(old.training)
    return module


def _install(new: nn.Module, old: nn.Module, state: dict[str, Tensor]) -> nn.Module:
    new.load_state_dict(state)
    for name, param in new.named_parameters():
        param.requires_grad_(old.get_parameter(name).requires_grad)
    return new


def _resized(
    graph: NetGraph, node: str, width: int, shapes: dict[str, Shape], where: str, *,
    preserve: bool,
) -> tuple[NetGraph, list[tuple[str, int]], list[tuple[str, int]]]:
    """A copy of ``graph`` with ``node`` ``width`` units wide, and the batchnorms and readers
    its channels reach (:func:`_trace`, which refuses what cannot be resized)."""
    norms, readers = _trace(graph, node, shapes, where, preserve=preserve)
    spec = graph.spec(node)
    g = graph.copy()
    g.set_spec(node, spec.replace(**{_WIDTH_KEY[spec.op]: width}))
    return g, norms, readers


def _remap(
    net: GraphNet, node: str, index: Tensor, scale: Tensor | None, noise: Tensor | None, where: str
) -> GraphNet:
    """``net`` with ``node``'s output channel j taken from old channel ``index[j]``.

    Readers' input columns are multiplied by ``scale`` (None: 1); ``noise`` is added to the
    node's new weight rows.
    """
    g, norms, readers = _resized(net.graph, node, len(index), net.shapes, where,
                                 preserve=scale is not None)  # fmt: skip
    carriers = [(n, block, 0) for n, block in norms]
    return remap_channels(net, g, index, [node], carriers, readers, where, scale=scale, noise=noise)


def remap_channels(
    net: GraphNet,
    graph: NetGraph,
    index: Tensor,
    producers: Sequence[str],
    carriers: Sequence[tuple[str, int, int]],
    readers: Sequence[tuple[str, int]],
    where: str,
    *,
    offsets: Mapping[str, int] | None = None,
    scale: Tensor | None = None,
    noise: Tensor | None = None,
) -> GraphNet:
    """``net`` rebuilt as ``graph`` (its producers' widths already changed), with channel j of
    the producers taken from old channel ``index[j]``.

    The producers' weight rows, the carriers' entries and the readers' input columns (each with
    its block size, see :func:`_trace`) are selected through ``index``. A carrier is a member
    holding a tensor per channel (a batchnorm, a depthwise conv, a layer norm, a layer scale),
    given as (node, block size, the dimension of its tensors the channels are on); a tensor
    of it without that dimension (a batchnorm's step count) is kept. Readers' columns are
    multiplied by ``scale`` and ``noise`` is added to the producers' rows, as :func:`widen`
    needs. A carrier or reader in ``offsets`` holds the channels among others, from that
    offset on (behind a concat): only those are selected, the others kept in place. A
    producer without weights (a ``channel_pad``) is built afresh from its spec. Shared by
    :func:`narrow` and :func:`widen` (one producer) and coupled-group narrowing (several).
    """
    try:
        shapes = graph.validate()
    except GraphError as err:
        raise GraphError(f"{where}: {err}") from None
    offsets = offsets or {}
    width = net.shapes[producers[0]][-1 if graph.op(producers[0]) in LAST_DIM else 0]

    def kept(node: str, block: int, size: int) -> Tensor:
        """Which of ``node``'s ``size`` features along the channels stay."""
        chosen = _spliced(index, offsets[node], width, size // block) if node in offsets else index
        return _expand(chosen, block)

    # One state per node, so a layer that both produces the channels and reads them (a conv
    # inside a coupled residual group) has its rows and its input columns selected.
    states: dict[str, dict[str, Tensor]] = {}

    def state_of(node: str) -> dict[str, Tensor]:
        return states.get(node) or dict(net.layers[node].state_dict())

    for node in producers:
        if rows := _ROWS.get(graph.op(node)):
            state = state_of(node)
            for key, dim in rows.items():
                if key in state:
                    state[key] = state[key].index_select(dim, index.to(state[key].device))
            states[node] = state
        elif graph.op(node) in _WIDTH_KEY:
            states[node] = _selected(state_of(node), index, 0)
            if noise is not None:
                weight = states[node]["weight"]
                states[node]["weight"] = weight + noise.to(weight)
    for node, block, dim in carriers:
        state = state_of(node)
        size = next(v.shape[dim] for v in state.values() if v.dim() > dim)
        states[node] = _selected(state, kept(node, block, size), dim)
    for node, block in readers:
        state = state_of(node)
        key = _COLUMNS.get(graph.op(node), "weight")
        weight = state[key]
        weight = weight.index_select(1, kept(node, block, weight.shape[1]).to(weight.device))
        if scale is not None:
            factor = scale.to(weight)
            if node in offsets:  # the other groups' columns keep their weights
                start, rest = offsets[node], weight.shape[1] // block - len(scale)
                factor = torch.cat([factor.new_ones(start), factor, factor.new_ones(rest - start)])
            factor = factor.repeat_interleave(block)
            weight = weight * factor.view(1, -1, *[1] * (weight.dim() - 2))
        state[key] = weight
        states[node] = state
    modules = {
        node: _install(_build_like(graph, node, shapes, net.layers[node]), net.layers[node], state)
        for node, state in states.items()
    }
    return net.rebuilt(graph, modules=modules)


def keep_index(keep: int | Sequence[int], count: int, where: str) -> list[int]:
    """``keep`` (a count k: the first k; or distinct indices) of ``count`` as indices, checked;
    a mistake is a :class:`GraphError` starting with ``where``."""
    if isinstance(keep, bool):
        raise GraphError(f"{where}: keep must be an int or channel indices, got {keep!r}")
    if isinstance(keep, int):
        if not 1 <= keep <= count:
            raise GraphError(f"{where}: keep must be in 1..{count}, got {keep}")
        return list(range(keep))
    try:
        index = [operator.index(i) for i in keep]
    except TypeError:
        raise GraphError(f"{where}: keep must be an int or channel indices, got {keep!r}") from None
    bad = [i for i in index if not 0 <= i < count]
    if not index or bad or len(set(index)) != len(index):
        raise GraphError(
            f"{where}: keep must list distinct channel indices in 0..{count - 1}, got {index}"
        )
    return index


def check_narrowable(graph: NetGraph, node: str, shapes: dict[str, Shape] | None = None) -> None:
    """Raise what :func:`narrow` would raise for ``node``'s channels, without building the
    narrowed network: the check a sweep makes of every layer (building each took a DenseNet's
    sweep a minute). ``shapes``: the graph's, when the caller has them."""
    where = f"narrow {node!r}"
    _target(graph, node, where)
    # the graph narrow(net, node, 1) builds, validated as remap_channels validates it
    g, _, _ = _resized(graph, node, 1, shapes or graph.shapes(), where, preserve=False)
    try:
        g.validate()
    except GraphError as err:
        raise GraphError(f"{where}: {err}") from None


def narrow(net: GraphNet, node: str, keep: int | Sequence[int]) -> GraphNet:
    """``net`` with only the ``keep`` output channels of the conv or linear ``node``.

    ``keep`` is a count k (the first k channels) or the channel indices to keep, in the new
    order. The kept channels keep their weights, batchnorm statistics and the weights readers
    give them; the readers' columns for dropped channels go. Refused (``GraphError`` naming the
    node) when the channels reach an add, DropIn, resize, channel_pad, grouped conv or the output.

    Example:
        >>> thin = narrow(net, "conv1", 12)  # doctest: +SKIP
        >>> thin.layers["conv1"].weight.equal(net.layers["conv1"].weight[:12])  # doctest: +SKIP
        True
    """
    where = f"narrow {node!r}"
    count = _target(net.graph, node, where)
    index = keep_index(keep, count, where)
    if index == list(range(count)):
        return net.rebuilt(net.graph)
    return _remap(net, node, torch.tensor(index), None, None, where)


def widen(
    net: GraphNet,
    node: str,
    out: int,
    *,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> GraphNet:
    """``net`` with the conv or linear ``node`` widened to ``out`` channels (Net2WiderNet).

    Each new channel copies an existing one drawn uniformly with ``generator``; every reader
    divides the incoming weights of a copied channel by how many copies it now has, so with
    ``noise=0`` the eval-mode function is unchanged (batchnorms in between copy the statistics
    too). ``noise`` > 0 adds Gaussian noise, with std ``noise`` × the std of the node's
    weights, to the new channels' weights to break the symmetry (the function then changes
    slightly). Refused where copying would not preserve the function (across-channel LRN,
    prefix width dropout) and wherever :func:`narrow` is.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> wide = widen(net, "conv1", 32, generator=gen)  # doctest: +SKIP
    """
    where = f"widen {node!r}"
    count = _target(net.graph, node, where)
    if isinstance(out, bool) or not isinstance(out, int) or out < count:
        raise GraphError(
            f"{where}: out must be an int >= {count} (use narrow to shrink), got {out!r}"
        )
    if not (isinstance(noise, int | float) and math.isfinite(noise) and noise >= 0):
        raise GraphError(f"{where}: noise must be a finite number >= 0, got {noise!r}")
    if out == count:
        return net.rebuilt(net.graph)
    device = generator.device if generator is not None else torch.device("cpu")
    extra = torch.randint(count, (out - count,), generator=generator, device=device).cpu()
    index = torch.cat([torch.arange(count), extra])
    scale = 1.0 / torch.bincount(index, minlength=count).to(torch.float64)[index]
    jitter = None
    if noise > 0:
        weight = net.layers[node].weight.detach()
        shape = (out - count, *weight.shape[1:])
        draw = torch.randn(shape, generator=generator, device=device).cpu()
        std = float(weight.float().std()) if weight.numel() > 1 else 1.0
        jitter = torch.cat([torch.zeros(count, *weight.shape[1:]), draw * (noise * std)])
    return _remap(net, node, index, scale, jitter, where)
