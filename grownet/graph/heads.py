"""Surgery on an attention layer's heads: keep some, each with its weights.

A head is one slice of the query, key and value projections and the matching columns of the
output projection; heads never mix before that projection, so dropping a head takes out
exactly its own terms and leaves every other head, and the attention layer's output width
(the residual stream's), as they were. A width sweep thins heads this way: its points run the
first ``keep_heads`` heads alone (:func:`grownet.layers.attention.self_attention`), and its
check keeps those heads for good (:func:`narrow_heads`). A width stage adds heads
(:func:`grow_heads`) as masked structural growth does: each new head's share of the output
projection starts at zero, so the network computes what it did, and the new heads' queries,
keys and values (drawn as the layer draws its own) learn from there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from grownet.graph.executor import GraphNet
from grownet.graph.ops import head_size
from grownet.graph.spec import GraphError, LayerSpec
from grownet.graph.weights import keep_index

__all__ = ["grow_heads", "narrow_heads"]


def grow_heads(net: GraphNet, node: str, more: int, *, seed: int = 0) -> GraphNet:
    """``net`` with ``more`` heads added to the attention ``node`` (each the size of its
    others), computing the same function: their output columns are zero.

    Example:
        >>> from grownet.zoo import gpt
        >>> net = GraphNet(gpt(depth=1, width=16, heads=2, in_shape=(8,), num_classes=5))
        >>> grow_heads(net, "attn1", 2).layers["attn1"].out_proj.weight.shape
        torch.Size([16, 32])
    """
    where = f"grow heads of {node!r}"
    spec = _attention(net, node, where)
    if isinstance(more, bool) or not isinstance(more, int) or more < 1:
        raise GraphError(f"{where}: more must be an integer >= 1, got {more!r}")
    heads, dim = spec.params["heads"], net.shapes[node][-1]
    size = head_size(spec.params, dim)
    old, added = net.layers[node], more * size
    inner = (heads + more) * size
    ref = old.in_proj_weight.detach()
    generator = torch.Generator().manual_seed(seed)
    bound = math.sqrt(6.0 / (dim + 3 * inner))  # Xavier-uniform of the grown projection
    fresh = (torch.rand(3, added, dim, generator=generator) * 2 - 1) * bound
    state = {
        "in_proj_weight": torch.cat([ref.view(3, heads * size, dim), fresh.to(ref)], 1)
        .reshape(3 * inner, dim),
        "out_proj.weight": torch.cat(
            [old.out_proj.weight.detach(), ref.new_zeros(dim, added)], 1
        ),
    }  # fmt: skip
    if old.in_proj_bias is not None:
        bias = old.in_proj_bias.detach().view(3, heads * size)
        state["in_proj_bias"] = torch.cat([bias, bias.new_zeros(3, added)], 1).reshape(-1)
        state["out_proj.bias"] = old.out_proj.bias.detach()
    return _rebuilt(net, node, spec, heads + more, size, state)


def narrow_heads(net: GraphNet, node: str, keep: int | Sequence[int]) -> GraphNet:
    """``net`` with only the ``keep`` heads of the attention ``node``: a count k (the first
    k) or the head indices to keep, in the new order.

    Example:
        >>> from grownet.zoo import gpt
        >>> net = GraphNet(gpt(depth=1, width=16, heads=4, in_shape=(8,), num_classes=5))
        >>> thin = narrow_heads(net, "attn1", 1)
        >>> thin.graph.spec("attn1").params["heads"], thin.layers["attn1"].in_proj_weight.shape
        (1, torch.Size([12, 16]))
    """
    where = f"narrow heads of {node!r}"
    spec = _attention(net, node, where)
    heads, size = spec.params["heads"], head_size(spec.params, net.shapes[node][-1])
    index = keep_index(keep, heads, where)
    old = net.layers[node]
    # feature rows of the kept heads, in each of the q, k, v blocks of the input projection
    features = torch.tensor([h * size + i for h in index for i in range(size)])
    inner = heads * size
    rows = torch.cat([block * inner + features for block in range(3)])
    state = {
        "in_proj_weight": old.in_proj_weight.detach()[rows],
        "out_proj.weight": old.out_proj.weight.detach()[:, features],
    }
    if old.in_proj_bias is not None:
        state["in_proj_bias"] = old.in_proj_bias.detach()[rows]
        state["out_proj.bias"] = old.out_proj.bias.detach()
    return _rebuilt(net, node, spec, len(index), size, state)


def _attention(net: GraphNet, node: str, where: str) -> LayerSpec:
    if node not in net.graph or net.graph.op(node) != "attention":
        raise GraphError(f"{where}: not an attention node; give one of "
                         f"{net.graph.nodes_of('attention')}")  # fmt: skip
    return net.graph.spec(node)


def _rebuilt(
    net: GraphNet, node: str, spec: LayerSpec, heads: int, size: int, state: dict[str, Tensor]
) -> GraphNet:
    """``net`` with ``node`` holding ``heads`` heads of ``size`` features and ``state``."""
    graph = net.graph.copy()
    graph.set_spec(node, spec.replace(heads=heads, head_dim=size, keep_heads=0))
    old, ref = net.layers[node], net.layers[node].in_proj_weight
    with torch.device(ref.device):
        new = type(old)(
            net.shapes[node][-1], heads=heads, head_dim=size, dropout=old.dropout,
            bias=old.in_proj_bias is not None, causal=old.causal,
        )  # fmt: skip
    new.to(dtype=ref.dtype).train(old.training)
    new.load_state_dict(state)
    return net.rebuilt(graph, modules={node: new})
