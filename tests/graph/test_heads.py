"""Attention heads kept or dropped: a sweep's prefix of heads, and surgery keeping heads."""

import pytest
import torch

from grownet.graph import GraphError, GraphNet
from grownet.graph.heads import narrow_heads
from grownet.zoo import gpt

TOKENS = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(0))


def net_of(heads=4, **kw):
    torch.manual_seed(0)
    return GraphNet(gpt(depth=1, width=16, heads=heads, in_shape=(8,), num_classes=11, **kw)).eval()


def without_heads(net, node, dropped):
    """The reference: the other heads' terms alone, by zeroing the dropped heads' columns of
    the output projection (heads never mix before it)."""
    clone = GraphNet.with_state(net.graph, {k: v.clone() for k, v in net.state_dict().items()})
    size = net.shapes[node][-1] // net.graph.spec(node).params["heads"]
    with torch.no_grad():
        for h in dropped:
            clone.layers[node].out_proj.weight[:, h * size:(h + 1) * size] = 0
    return clone.eval()


@pytest.mark.parametrize(("keep", "dropped"), [(1, [1, 2, 3]), (3, [3]), ([2, 0], [1, 3])])
def test_narrowed_heads_compute_the_kept_heads_terms(keep, dropped):
    net = net_of()
    thin = narrow_heads(net, "attn1", keep).eval()
    kept = keep if isinstance(keep, int) else len(keep)
    assert thin.graph.spec("attn1").params["heads"] == kept
    assert torch.allclose(thin(TOKENS), without_heads(net, "attn1", dropped)(TOKENS), atol=1e-5)
    # the graph counts what the layer holds
    held = sum(p.numel() for p in thin.layers["attn1"].parameters())
    assert thin.graph.costs()["attn1"].params == held
    # and a second narrowing of narrowed heads (head_dim now explicit) keeps working
    assert narrow_heads(thin, "attn1", 1).graph.spec("attn1").params["head_dim"] == 4


def test_a_prefix_of_heads_runs_what_narrowing_keeps():
    net = net_of()
    swept = net.graph.copy()
    swept.set_spec("attn1", swept.spec("attn1").replace(keep_heads=2))
    masked = GraphNet.with_state(swept, net.state_dict()).eval()
    assert torch.allclose(masked(TOKENS), narrow_heads(net, "attn1", 2).eval()(TOKENS), atol=1e-5)
    masked.train()
    masked(TOKENS).sum().backward()
    grad = masked.layers["attn1"].out_proj.weight.grad
    assert grad[:, 8:].abs().sum() == 0 and grad[:, :8].abs().sum() > 0  # dropped heads rest


@pytest.mark.parametrize(
    ("keep", "node", "message"),
    [
        (1, "fc1_1", "'fc1_1': not an attention node"),
        (5, "attn1", "keep must be in 1..4, got 5"),
        ([1, 1], "attn1", "distinct channel indices in 0..3"),
    ],
)
def test_head_mistakes_name_the_node(keep, node, message):
    with pytest.raises(GraphError, match=message):
        narrow_heads(net_of(), node, keep)


def test_more_heads_kept_than_held_is_refused():
    graph = net_of().graph.copy()
    graph.set_spec("attn1", graph.spec("attn1").replace(keep_heads=5))
    with pytest.raises(GraphError, match=r"keep_heads must be in 0..heads=4 \(0: all\), got 5"):
        graph.validate()
