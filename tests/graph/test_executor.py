import pytest
import torch
from torch import nn

from grownet.graph import LayerSpec, NetGraph
from grownet.graph.executor import (
    _PLAIN,
    _RELU_INPLACE,
    GraphNet,
    exclusive_branches,
    sync_optimizer,
)
from grownet.graph.plan import Planner, StepPlan


def conv(c: int, **kw) -> LayerSpec:
    return LayerSpec("conv", out_channels=c, kernel_size=3, padding=1, **kw)


def residual_net(units: int = 3, *, kind: str = "depth_dropout", drop: float = 0.5) -> NetGraph:
    """input -> stem -> [unit: branch conv-bn-relu-conv, 1x1 shortcut, gated add, relu]* -> fc."""
    g = NetGraph()
    x = g.add("input", LayerSpec("input", shape=[3, 8, 8]))
    x = g.add("stem", conv(4), [x])
    for u in range(units):
        b = g.chain(
            x,
            [
                (f"u{u}_conv1", conv(4)),
                (f"u{u}_bn", LayerSpec("batchnorm")),
                (f"u{u}_relu", LayerSpec("relu")),
                (f"u{u}_conv2", conv(4)),
            ],
        )
        s = g.add(f"u{u}_short", LayerSpec("conv", out_channels=4, kernel_size=1), [x])
        a = g.add(f"u{u}_add", LayerSpec("gated_add", kind=kind, drop_prob=drop), [b, s])
        x = g.add(f"u{u}_out", LayerSpec("relu"), [a])
    x = g.add("gap", LayerSpec("global_avgpool"), [x])
    x = g.add("fc", LayerSpec("linear", out_features=5), [x])
    g.add("output", LayerSpec("output"), [x])
    return g


def test_exclusive_branches_are_the_residual_branches():
    branches = exclusive_branches(residual_net(2))
    assert branches[("u0_conv2", "u0_add")] == {"u0_conv1", "u0_bn", "u0_relu", "u0_conv2"}
    assert branches[("u1_short", "u1_add")] == {"u1_short"}  # the trunk feeds the branch too


def test_exclusive_branches_scale_to_thousands_of_nodes():
    g = residual_net(400)
    assert len(g) > 2500
    branches = exclusive_branches(g)
    assert len(branches) == 800
    assert all(len(branches[(f"u{u}_conv2", f"u{u}_add")]) == 4 for u in range(400))
    net = GraphNet(g)
    assert net(torch.randn(1, 3, 8, 8)).shape == (1, 5)  # flat loop: no recursion limit


class Counting(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, *xs):
        self.calls += 1
        return self.inner(*xs)


def test_gated_off_branch_is_never_called_forward_or_backward():
    g = residual_net(2)
    net = GraphNet(g)
    for n in g.nodes:
        net.layers[n] = Counting(net.layers[n])
    # GatedAdd is wrapped too; the executor reads .mode from the wrapped module, so unwrap those
    for n in ("u0_add", "u1_add"):
        net.layers[n] = net.layers[n].inner
    plan = StepPlan(gates={"u0_add": False, "u1_add": True})
    out = net(torch.randn(2, 3, 8, 8), plan)
    out.sum().backward()
    for n in ("u0_conv1", "u0_bn", "u0_relu", "u0_conv2"):
        assert net.layers[n].calls == 0
        assert all(p.grad is None for p in net.layers[n].parameters())
    for n in ("u1_conv1", "u1_conv2", "u0_short", "stem", "fc"):
        assert net.layers[n].calls == 1
    assert net.layers["u1_conv1"].inner.weight.grad is not None
    assert net.skipped_nodes(plan) == {"u0_conv1", "u0_bn", "u0_relu", "u0_conv2"}


def test_closed_gate_output_equals_shortcut_path():
    torch.manual_seed(0)
    g = residual_net(1)
    net = GraphNet(g)
    x = torch.randn(2, 3, 8, 8)
    closed = net(x, StepPlan(gates={"u0_add": False}))
    layers = net.layers
    expected = layers["fc"](layers["gap"](torch.relu(layers["u0_short"](layers["stem"](x)))))
    torch.testing.assert_close(closed, expected)


@pytest.mark.parametrize(("kind", "scale"), [("stochastic_depth", 0.5), ("depth_dropout", 1.0)])
def test_eval_applies_test_time_rule_and_ignores_gates(kind, scale):
    torch.manual_seed(0)
    net = GraphNet(residual_net(1, kind=kind, drop=0.5)).eval()
    x = torch.randn(2, 3, 8, 8)
    layers = net.layers
    stem = layers["stem"](x)
    branch = layers["u0_conv2"](layers["u0_relu"](layers["u0_bn"](layers["u0_conv1"](stem))))
    unit = torch.relu(layers["u0_short"](stem) + scale * branch)
    expected = layers["fc"](layers["gap"](unit))
    torch.testing.assert_close(net(x, StepPlan(gates={"u0_add": False})), expected)


def dropin_net(length: int = 10) -> NetGraph:
    g = NetGraph()
    x = g.add("input", LayerSpec("input", shape=[2, 4, 4]))
    old = g.add("conv1", conv(2), [x])
    new = g.add("conv2", conv(2), [old])
    d = g.add("dropin", LayerSpec("dropin", length=length), [new, old])
    x = g.add("flat", LayerSpec("flatten"), [d])
    g.add("output", LayerSpec("output"), [x])
    return g


@pytest.mark.parametrize(("iteration", "runs_new"), [(0, False), (5, True), (10, True), (99, True)])
def test_dropin_skips_new_layer_until_it_mixes_in(iteration, runs_new):
    net = GraphNet(dropin_net(length=10))
    net.layers["conv2"] = Counting(net.layers["conv2"])
    x = torch.randn(3, 2, 4, 4)
    out = net(x, StepPlan(iteration=iteration))
    assert (net.layers["conv2"].calls == 1) == runs_new
    old = net.layers["conv1"](x).flatten(1)
    new = net.layers["conv2"].inner(net.layers["conv1"](x)).flatten(1)
    k = int((1 - min(iteration / 10, 1)) * 32)  # per-sample prefix of 32 units from the old path
    torch.testing.assert_close(out, torch.cat([old[:, :k], new[:, k:]], dim=1))


def test_plan_override_of_dropin_q():
    net = GraphNet(dropin_net(length=10))
    x = torch.randn(1, 2, 4, 4)
    full_old = net(x, StepPlan(iteration=100, dropin_q={"dropin": 1.0}))
    torch.testing.assert_close(full_old, net.layers["conv1"](x).flatten(1))


def test_planner_is_reproducible_and_seed_dependent():
    g = residual_net(40, drop=0.5)
    a, b, c = Planner(g, seed=1), Planner(g, seed=1), Planner(g, seed=2)
    assert a.draw(3) == b.draw(3)
    assert a.draw(3) != a.draw(4)
    assert a.draw(3) != c.draw(3)
    state = torch.get_rng_state()
    gates = [a.draw(i).gates for i in range(200)]
    assert torch.equal(state, torch.get_rng_state())  # never touches the global RNG
    open_share = sum(sum(g.values()) for g in gates) / (200 * 40)
    assert 0.45 < open_share < 0.55


def test_planner_ignores_never_dropped_units():
    g = residual_net(2, drop=0.0)
    assert Planner(g, seed=0).draw(0).gates == {}


def test_rebuilt_reuses_unchanged_modules_and_optimizer_state():
    g = residual_net(2)
    net = GraphNet(g)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    g2 = g.copy()
    g2.set_spec("fc", LayerSpec("linear", out_features=7))
    net2 = net.rebuilt(g2)
    assert net2.layers["stem"] is net.layers["stem"]
    assert net2.layers["fc"] is not net.layers["fc"]
    opt2 = sync_optimizer(opt, net2)
    stem_w = net.layers["stem"].weight
    assert opt2.state[stem_w]["momentum_buffer"] is opt.state[stem_w]["momentum_buffer"]
    assert net2.layers["fc"].weight not in opt2.state
    assert opt2.param_groups[0]["momentum"] == 0.9
    assert net2(torch.randn(1, 3, 8, 8)).shape == (1, 7)


def test_sync_optimizer_keeps_param_groups():
    net = GraphNet(residual_net(1))
    decay = [p for n, p in net.named_parameters() if "bn" not in n]
    no_decay = [p for n, p in net.named_parameters() if "bn" in n]
    opt = torch.optim.SGD(
        [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=0.1, weight_decay=1e-4
    )
    g2 = net.graph.copy()
    g2.set_spec("fc", LayerSpec("linear", out_features=2))
    new = sync_optimizer(opt, net.rebuilt(g2))
    assert [g["weight_decay"] for g in new.param_groups] == [1e-4, 0.0]
    assert new.param_groups[1]["params"] == no_decay
    with pytest.raises(ValueError, match="new_params_group"):
        sync_optimizer(opt, net, new_params_group=5)


def test_relu_after_a_skipped_identity_unit_is_skipped_exactly():
    from grownet.zoo import build

    torch.manual_seed(0)
    graph = build("resnet20", stochastic_depth="uniform", p_last=0.5)
    net = GraphNet(graph)
    relu = net.layers["layer1_1_relu"]
    calls = []
    relu.register_forward_hook(lambda *a: calls.append(1))
    plan = StepPlan(gates={"layer1_1_add": False})
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    out = net(x, plan)
    assert calls == []  # the unit's ReLU of the previous ReLU's output was not run
    out.square().sum().backward()
    grad = x.grad.clone()
    # the same step with that ReLU forced to run gives the same output and gradient
    x.grad = None
    net._passable_relus = {}
    net._schedules.clear()
    again = net(x, plan)
    again.square().sum().backward()
    assert calls == [1]
    torch.testing.assert_close(out, again, rtol=0, atol=0)
    torch.testing.assert_close(x.grad, grad, rtol=0, atol=0)


def fan_out_net() -> NetGraph:
    """conv1 feeds a ReLU *and* an add: that ReLU must not overwrite conv1's output."""
    g = NetGraph()
    x = g.add("input", LayerSpec("input", shape=[3, 6, 6]))
    c1 = g.add("conv1", conv(4), [x])
    r1 = g.add("relu1", LayerSpec("relu"), [c1])
    bn = g.add("bn", LayerSpec("batchnorm"), [g.add("conv2", conv(4), [r1])])
    r2 = g.add("relu2", LayerSpec("relu"), [bn])
    a = g.add("add", LayerSpec("add"), [r2, c1])
    x = g.add(
        "fc", LayerSpec("linear", out_features=3), [g.add("gap", LayerSpec("global_avgpool"), [a])]
    )
    g.add("output", LayerSpec("output"), [x])
    return g


MIXED_GATES = StepPlan(gates={"u0_add": False, "u1_add": True, "u2_add": False})


@pytest.mark.parametrize(
    ("build_graph", "plan"),
    [(fan_out_net, StepPlan()), (residual_net, StepPlan()), (residual_net, MIXED_GATES)],
)
def test_in_place_relus_change_no_value_or_gradient(build_graph, plan):
    torch.manual_seed(0)
    net = GraphNet(build_graph())
    x = torch.randn(2, *net.graph.input_shape, requires_grad=True)
    out = net(x, plan)
    out.square().sum().backward()
    grads = [x.grad.clone(), *(p.grad.clone() for p in net.parameters() if p.grad is not None)]
    net.zero_grad()
    x.grad = None
    net._inplace_relus = {}  # every ReLU out of place
    net._schedules.clear()
    again = net(x, plan)
    again.square().sum().backward()
    torch.testing.assert_close(out, again, rtol=0, atol=0)
    after = [x.grad, *(p.grad for p in net.parameters() if p.grad is not None)]
    for before, now in zip(grads, after, strict=True):
        torch.testing.assert_close(before, now, rtol=0, atol=0)


def test_relu_after_a_gated_add_runs_in_place_only_when_the_add_adds():
    net = GraphNet(residual_net())
    kinds = {s.node: s.kind for s in net._schedule(net.closed_edges(MIXED_GATES))}
    # u1 adds its branch: a fresh sum the ReLU may overwrite; u0 and u2 hand on their
    # shortcut's output, a tensor the add does not own
    assert kinds["u1_out"] == _RELU_INPLACE
    assert kinds["u0_out"] == kinds["u2_out"] == _PLAIN


def test_only_a_relu_that_owns_its_input_runs_in_place():
    net = GraphNet(fan_out_net())
    assert "relu1" not in net._inplace_relus  # conv1 also feeds the add
    assert "relu2" in net._inplace_relus  # the BatchNorm output feeds it alone
