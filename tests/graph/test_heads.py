"""Attention heads kept or dropped: a sweep's prefix of heads, and surgery keeping heads."""

import pytest
import torch

from grownet.graph import GraphError, GraphNet
from grownet.graph.heads import grow_heads, narrow_heads
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


def test_grown_heads_keep_the_function_and_learn():
    net = net_of(heads=2)
    wide = grow_heads(net, "attn1", 2, seed=1).eval()
    assert wide.graph.spec("attn1").params["heads"] == 4
    assert torch.allclose(wide(TOKENS), net(TOKENS), atol=1e-6)
    wide.train()
    wide(TOKENS).sum().backward()
    assert wide.layers["attn1"].out_proj.weight.grad[:, 16:].abs().sum() > 0  # the new heads
    # the old heads are where they were: narrowing back gives the network grown from
    back = narrow_heads(wide, "attn1", 2)
    for key, value in net.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


@pytest.mark.parametrize("more", [0, -1, 1.5, True])
def test_growing_no_heads_is_refused(more):
    with pytest.raises(GraphError, match=r"grow heads of 'attn1': more must be an integer >= 1"):
        grow_heads(net_of(), "attn1", more)
