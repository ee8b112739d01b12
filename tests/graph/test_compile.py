"""torch.compile of the executor's straight chains: the gating stays in Python.

The tests compile with ``backend="aot_eager"`` (Dynamo's capture plus AOTAutograd's joint
forward/backward graph, run by eager kernels): the same capture, guards and recompilation as
inductor, without the C++ build that takes about half a minute per graph on this project's
2-core CPU.
"""

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from grownet.graph import LayerSpec, NetGraph
from grownet.graph.executor import GraphNet, linear_chains
from grownet.graph.plan import StepPlan

from .test_executor import residual_net


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def twins(graph: NetGraph) -> tuple[GraphNet, GraphNet]:
    """An eager executor and a compiled one with the same weights."""
    torch.manual_seed(0)
    eager, compiled = GraphNet(graph), GraphNet(graph)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_segments(backend="aot_eager")
    return eager, compiled


def test_chains_are_straight_runs_between_branch_points():
    chains = linear_chains(residual_net(2))
    assert chains == [
        ("stem",),  # feeds a branch and a shortcut
        ("u0_conv1", "u0_bn", "u0_relu", "u0_conv2"),  # ends at the gated add
        ("u0_short",),
        ("u0_out",),
        ("u1_conv1", "u1_bn", "u1_relu", "u1_conv2"),
        ("u1_short",),
        ("u1_out", "gap", "fc", "output"),
    ]


def test_compiled_follows_each_plan_without_recompiling():
    eager, compiled = twins(residual_net(2))
    x = torch.randn(4, 3, 8, 8)
    plans = [
        StepPlan(iteration=i, gates={"u0_add": i % 2 == 0, "u1_add": i % 3 != 1}) for i in range(6)
    ]
    graphs = []
    for plan in plans:
        for net in (eager, compiled):
            net.zero_grad(set_to_none=True)
            net(x, plan).square().mean().backward()
        torch.testing.assert_close(compiled(x, plan), eager(x, plan))
        for (name, a), b in zip(eager.named_parameters(), compiled.parameters(), strict=True):
            assert (a.grad is None) == (b.grad is None), name  # the same branches skipped
            if a.grad is not None:
                torch.testing.assert_close(b.grad, a.grad, msg=name)
        graphs.append(counters["stats"]["unique_graphs"])
    assert compiled.layers["u0_conv1"].weight.grad is None  # the last plan skipped u0...
    assert compiled.layers["u1_conv1"].weight.grad is not None  # ...and ran u1
    # the two branch chains share one graph (equal layers and shapes), the head chain another
    assert graphs == [2] * 6


def test_eval_and_state_dict_are_unchanged_by_compiling():
    eager, compiled = twins(residual_net(1, kind="stochastic_depth"))
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert len(list(compiled.parameters())) == len(list(eager.parameters()))
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(compiled.eval()(x), eager.eval()(x))


def test_rebuilt_keeps_compiling():
    _, compiled = twins(residual_net(1))
    graph = compiled.graph.copy()
    graph.set_spec("fc", LayerSpec("linear", out_features=7))
    grown = compiled.rebuilt(graph)
    assert grown.compiled_chains == compiled.compiled_chains
    assert grown.layers["u0_conv1"] is compiled.layers["u0_conv1"]
    plain = GraphNet(graph, modules=dict(grown.layers.items()))
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(grown(x), plain(x))


def test_many_different_chains_stay_compiled():
    """Dynamo gives one code object 8 compiled versions; 12 different chains get one each."""
    g = NetGraph()
    x = g.add("input", LayerSpec("input", shape=[3, 4, 4]))
    for u in range(12):
        c = 3 + u
        b = g.chain(x, [(f"c{u}", LayerSpec("conv", out_channels=c, kernel_size=1))])
        b = g.chain(b, [(f"r{u}", LayerSpec("relu"))])
        b = g.add(f"b{u}", LayerSpec("conv", out_channels=3, kernel_size=1), [b])
        gate = LayerSpec("gated_add", drop_prob=0.5)
        x = g.add(f"a{u}", gate, [b, x])
    g.add("output", LayerSpec("output"), [x])
    net = GraphNet(g)
    assert net.compile_segments(backend="eager") == 12
    net(torch.randn(1, 3, 4, 4))
    assert counters["stats"]["unique_graphs"] == 12
