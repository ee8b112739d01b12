"""Surgery on an attention layer's heads: keep some, each with its weights.

A head is one slice of the query, key and value projections and the matching columns of the
output projection; heads never mix before that projection, so dropping a head takes out
exactly its own terms and leaves every other head, and the attention layer's output width
(the residual stream's), as they were. A width sweep thins heads this way: its points run the
first ``keep_heads`` heads alone (:func:`grownet.layers.attention.self_attention`), and its
check keeps those heads for good (:func:`narrow_heads`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from grownet.graph.executor import GraphNet
from grownet.graph.spec import GraphError
from grownet.graph.weights import keep_index

__all__ = ["head_size", "narrow_heads"]


def head_size(net: GraphNet, node: str) -> int:
    """Features of each of ``node``'s heads."""
    params = net.graph.spec(node).params
    return params["head_dim"] or net.shapes[node][-1] // params["heads"]


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
    if node not in net.graph or net.graph.op(node) != "attention":
        raise GraphError(f"{where}: not an attention node; give one of "
                         f"{net.graph.nodes_of('attention')}")  # fmt: skip
    spec = net.graph.spec(node)
    heads, size = spec.params["heads"], head_size(net, node)
    index = keep_index(keep, heads, where)
    graph = net.graph.copy()
    graph.set_spec(node, spec.replace(heads=len(index), head_dim=size, keep_heads=0))
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
    ref = old.in_proj_weight
    with torch.device(ref.device):
        new = type(old)(
            net.shapes[node][-1], heads=len(index), head_dim=size, dropout=old.dropout,
            bias=old.in_proj_bias is not None, causal=old.causal,
        )  # fmt: skip
    new.to(dtype=ref.dtype).train(old.training)
    new.load_state_dict(state)
    return net.rebuilt(graph, modules={node: new})
