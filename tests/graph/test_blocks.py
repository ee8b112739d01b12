"""Residual blocks copied and inserted: DropIn and zero starts keep the function, stacking
repeats the weights, and a DropIn still at q = 1 does not run the new block."""

import pytest
import torch

from grownet.graph import GraphError, GraphNet, LayerSpec
from grownet.graph.blocks import block_state, insert_block, residual_block
from grownet.graph.plan import StepPlan
from grownet.zoo import cifar_resnet, gpt

IDS = torch.randint(0, 7, (3, 8), generator=torch.Generator().manual_seed(0))


def trained_gpt():
    torch.manual_seed(0)
    g = gpt(depth=2, width=16, heads=2, in_shape=(8,), num_classes=7)
    net = GraphNet(g)
    with torch.no_grad():  # weights away from their initial values, biases included
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return g, net.eval()


def grown_net(graph, state, extra=None):
    net = GraphNet(graph)
    net.load_state_dict({**state, **(extra or {})}, strict=False)
    return net.eval()


@pytest.mark.parametrize(("end", "units", "start", "first"), [
    ("add2_2", 2, "add1_2", "ln2_1"),
    ("add2_2", 1, "add2_1", "ln2_2"),
    ("add1_2", 2, "pos", "ln1_1"),
])  # fmt: skip
def test_a_block_is_the_units_that_end_at_an_add(end, units, start, first):
    block = residual_block(trained_gpt()[0], end, units=units)
    assert (block.start, block.nodes[0], block.nodes[-1]) == (start, first, end)


def test_a_dropin_joined_block_keeps_the_function_and_is_not_run_at_q_1():
    g, net = trained_gpt()
    grown, copies = insert_block(g, "add2_2", residual_block(g, "add2_2", units=2), suffix="_g1")
    new = grown_net(grown, net.state_dict())
    torch.testing.assert_close(new(IDS, StepPlan(iteration=0)), net(IDS))
    skipped = new.train().skipped_nodes(StepPlan(iteration=0))
    assert set(copies.values()) <= skipped
    assert not new.skipped_nodes(StepPlan(iteration=1000)) & set(copies.values())


def test_a_zero_started_block_is_the_identity_at_insertion():
    g, net = trained_gpt()
    grown, copies = insert_block(g, "add1_2", residual_block(g, "add2_2", units=2),
                                 suffix="_z", join="plain")  # fmt: skip
    extra = block_state(grown, copies, net.state_dict(), start="zero")
    assert sorted(extra) == ["layers.attn2_z.out_proj.weight", "layers.fc2_2_z.weight"]
    torch.testing.assert_close(grown_net(grown, net.state_dict(), extra)(IDS), net(IDS))


def test_a_stacked_block_repeats_the_copied_weights():
    g, net = trained_gpt()
    block = residual_block(g, "add2_2", units=2)
    grown, copies = insert_block(g, "add2_2", block, suffix="_s", join="plain")
    new = grown_net(grown, net.state_dict(),
                    block_state(grown, copies, net.state_dict(), start="copy"))  # fmt: skip
    for node, copy in copies.items():
        for a, b in zip(net.layers[node].parameters(), new.layers[copy].parameters(), strict=True):
            torch.testing.assert_close(a, b)
    assert not torch.allclose(new(IDS), net(IDS))  # stacking changes the function


@pytest.mark.parametrize(("call", "message"), [
    (lambda g: residual_block(g, "ln2_1"), r"'ln2_1' is a layer_norm, not a residual add"),
    (lambda g: residual_block(g, "add1_2", units=3), r"fewer than 3 residual units in a row"),
    (lambda g: residual_block(g, "nowhere"), r"growth position 'nowhere' is not a node"),
    (lambda g: insert_block(g, "tok", residual_block(g, "add2_2"), suffix="_x"), None),
    (lambda g: insert_block(g, "add2_2", residual_block(g, "add2_2"), suffix=""),
     r"insert_block: node 'ln2_2' already exists; pick another suffix"),
    (lambda g: insert_block(g, "head", residual_block(g, "add2_2"), suffix="_x"),
     r"'head' gives \(8, 7\), the block reads \(8, 16\)"),
])  # fmt: skip
def test_mistakes_are_one_line(call, message):
    g = trained_gpt()[0]
    if message is None:  # the token embedding has the stream's shape: a valid place
        assert call(g)[0].validate()
        return
    with pytest.raises(GraphError, match=message):
        call(g)


def test_a_resnet_unit_is_a_block_too():
    g = cifar_resnet(depth=8)
    block = residual_block(g, "layer1_0_add")
    assert (block.start, block.nodes[0]) == ("relu", "layer1_0_conv1")
    grown, copies = insert_block(g, "layer1_0_add", block, suffix="_g",
                                 dropin=LayerSpec("dropin", length=10))  # fmt: skip
    assert len(copies) == len(block.nodes) and grown.validate()
