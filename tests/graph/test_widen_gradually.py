"""Gradual width growth: width_dropin, widen_gradually, the Planner's q, collapse, optimizer."""

import copy

import pytest
import torch

from grownet.graph.coupling import group_of
from grownet.graph.executor import GraphNet, sync_optimizer
from grownet.graph.plan import Planner
from grownet.graph.spec import GraphError
from grownet.graph.widen import (
    collapse_width_dropins,
    sync_widened_optimizer,
    widen_gradually,
)
from grownet.layers.width_dropin import WidthDropIn, width_dropin
from grownet.zoo import build

LENGTH, START = 10, 5

# (model, options, node widened, k): BN + pools + global pool; flatten -> linear; a linear
# layer; a coupled residual stage (4 producers, 1x1 projection shortcuts, B).
CASES = [
    ("convnet", {}, "conv1_1", 4),
    ("lenet", {}, "conv2", 5),
    ("lenet", {}, "ip1", 7),
    ("cifar_resnet", {"depth": 20, "shortcut": "B"}, "layer2_0_conv2", 8),
]
IDS = [f"{m}-{n}" for m, _, n, _ in CASES]


def _setup(case, init, batch=4):
    model, options, node, k = case
    torch.manual_seed(0)
    net = GraphNet(build(model, **options))
    reference = copy.deepcopy(net)
    wide = widen_gradually(net, node, k, dropin_length=LENGTH, start=START, init=init, seed=1)
    x = torch.randn(batch, *net.graph.input_shape)
    return reference, wide, x


@pytest.mark.parametrize("init", ["random", "net2net"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_function_kept_at_start(case, init, train):
    reference, wide, x = _setup(case, init)
    reference.train(train)
    wide.train(train)
    wide.set_plan(Planner(wide.graph).draw(START))
    # Exact up to float summation order (a Net2Net pair sums W/2 x + W/2 x).
    torch.testing.assert_close(wide(x), reference(x), rtol=1e-5, atol=1e-6)
    for bn in reference.graph.nodes_of(
        "batchnorm"
    ):  # after the forward: old channels' running stats unchanged
        old, new = reference.layers[bn], wide.layers[bn]
        c = old.running_mean.shape[0]
        torch.testing.assert_close(new.running_mean[:c], old.running_mean)
        torch.testing.assert_close(new.running_var[:c], old.running_var)


@pytest.mark.parametrize("init", ["random", "net2net"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradients_reach_new_units_once_mixed_in(case, init):
    _, wide, x = _setup(case, init, batch=8)
    _, _, node, k = case
    producers = [n for n in wide.graph.nodes_of("conv", "linear") if n in _producers(case)]
    old = wide.layers[node].weight.shape[0] - k
    planner = Planner(wide.graph)
    # q=1: no new unit on; q=0.5: the first k - floor(k/2) on; q=0: all on.
    for iteration, on in [(START, 0), (START + LENGTH // 2, k - k // 2), (START + LENGTH, k)]:
        wide.zero_grad()
        wide.set_plan(planner.draw(iteration))
        wide(x).square().sum().backward()
        for p in producers:
            grad = wide.layers[p].weight.grad.flatten(1).abs().sum(1)
            assert (grad[old + on :] == 0).all(), (p, iteration)
            # (any: a new unit may be dead behind a ReLU on the whole batch)
            assert on == 0 or (grad[old : old + on] > 0).any(), (p, iteration)
            assert (grad[:old] > 0).any()


def _producers(case):
    model, options, node, _ = case
    return group_of(build(model, **options), node).producers


@pytest.mark.parametrize("init", ["random", "net2net"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_after_schedule_collapses_to_plain_widened_net(case, init):
    _, wide, x = _setup(case, init)
    model, options, _, _ = case
    wide.eval()
    with pytest.raises(GraphError, match="still holds new units off"):
        collapse_width_dropins(wide, START + LENGTH - 1)
    wide.set_plan(Planner(wide.graph).draw(START + LENGTH))
    plain = collapse_width_dropins(wide, START + LENGTH)
    assert not plain.graph.nodes_of("width_dropin")
    assert len(plain.graph) == len(build(model, **options))
    for p in _producers(case):
        assert plain.layers[p] is wide.layers[p]  # weights carried, not copied
        assert plain.shapes[p][0] == wide.shapes[p][0]
    assert torch.equal(plain(x), wide(x))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_old_weights_kept(case):
    reference, wide, _ = _setup(case, "random")
    for node, module in reference.layers.items():
        for name, tensor in module.state_dict().items():
            grown = wide.layers[node].state_dict()[name]
            assert torch.equal(grown[tuple(slice(0, s) for s in tensor.shape)], tensor), node


def test_net2net_halves_the_readers_columns_of_a_copied_pair():
    torch.manual_seed(0)
    net = GraphNet(build("lenet"))
    wide = widen_gradually(net, "ip1", 1, dropin_length=LENGTH, start=0, init="net2net", seed=3)
    (source,) = wide.layers["ip2_in_wdi"].sources.tolist()
    w, w_old = wide.layers["ip2"].weight, net.layers["ip2"].weight
    torch.testing.assert_close(w[:, source], w_old[:, source] / 2)
    torch.testing.assert_close(w[:, 500], w_old[:, source] / 2)
    noise = wide.layers["ip1"].weight[500] - net.layers["ip1"].weight[source]
    assert 0 < noise.abs().max() < 0.1 * net.layers["ip1"].weight.abs().max()


@pytest.mark.parametrize("opt_class", [torch.optim.SGD, torch.optim.Adam])
def test_optimizer_state_kept_for_old_parameters_fresh_for_new(opt_class):
    torch.manual_seed(0)
    net = GraphNet(build("cifar_resnet", depth=20, shortcut="B"))
    x = torch.randn(2, 3, 32, 32)
    opt = opt_class(
        net.parameters(), lr=0.01, **({"momentum": 0.9} if opt_class is torch.optim.SGD else {})
    )
    net(x).sum().backward()
    opt.step()
    wide = widen_gradually(net, "layer2_0_conv2", 8, dropin_length=LENGTH, start=0)
    key = "momentum_buffer" if opt_class is torch.optim.SGD else "exp_avg"

    plain = sync_optimizer(opt, wide)  # whole widened parameters start fresh there
    kept = wide.layers["conv1"].weight
    assert plain.state[kept][key] is opt.state[kept][key]
    assert wide.layers["layer2_0_conv2"].weight not in plain.state

    new = sync_widened_optimizer(opt, net, wide)
    assert new.state[kept][key] is opt.state[kept][key]
    for node, old_rows in [("layer2_0_conv2", 32), ("layer2_0_bn2", 32)]:
        grown = new.state[wide.layers[node].weight][key]
        before = opt.state[net.layers[node].weight][key]
        assert torch.equal(grown[:old_rows], before)
        assert (grown[old_rows:] == 0).all()
    reader = new.state[wide.layers["layer2_1_conv1"].weight][key]  # widened input columns
    assert torch.equal(reader[:, :32], opt.state[net.layers["layer2_1_conv1"].weight][key])
    assert (reader[:, 32:] == 0).all()
    wide(x).sum().backward()
    new.step()  # the carried state fits the new shapes


def test_planner_gives_width_dropins_the_gradual_schedule():
    net = GraphNet(build("lenet"))
    wide = widen_gradually(net, "conv2", 4, dropin_length=LENGTH, start=START)
    planner = Planner(wide.graph)
    (node,) = wide.graph.nodes_of("width_dropin")
    qs = [planner.draw(i).dropin_q[node] for i in (0, START, START + 3, START + LENGTH, 99)]
    assert qs == [1.0, 1.0, 0.7, 0.0, 0.0]


@pytest.mark.parametrize(
    ("q", "sources", "expected"),
    [
        (1.0, None, [1, 2, 0, 0, 0]),
        (0.7, None, [1, 2, 3, 0, 0]),  # floor(0.7 * 3) = 2 off: the last two
        (0.4, None, [1, 2, 3, 4, 0]),
        (0.3, None, [1, 2, 3, 4, 5]),  # floor(0.9) = 0 off
        (0.0, None, [1, 2, 3, 4, 5]),
        (1.0, [1, 0, 1], [1, 2, 2, 1, 2]),
        (0.5, [1, 0, 1], [1, 2, 3, 4, 2]),
    ],
)
def test_width_dropin_hands_units_over_in_order(q, sources, expected):
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    assert width_dropin(x, old=2, q=q, sources=sources).tolist() == [expected]


def test_width_dropin_layer_checks_and_starts_off():
    layer = WidthDropIn(old=2, length=5, sources=[0, 1])
    assert layer.q == 1.0
    x = torch.arange(8.0).view(1, 4, 1, 2)
    assert torch.equal(layer(x)[:, 2:], x[:, :2])
    with pytest.raises(ValueError, match="q must be"):
        layer.q = 1.5
    with pytest.raises(ValueError, match="sources must be old units"):
        WidthDropIn(old=2, length=5, sources=[2])
    with pytest.raises(ValueError, match="old must be"):
        width_dropin(x, old=4, q=0.5)


@pytest.mark.parametrize(
    ("node", "kwargs", "match"),
    [
        ("ip2", {}, "output"),
        ("conv2", {"k": 0}, "k must be"),
        ("conv2", {"init": "zeros"}, "init must be"),
    ],
)
def test_refusals(node, kwargs, match):
    net = GraphNet(build("lenet"))
    options = {"k": 2, "dropin_length": LENGTH, "start": 0, **kwargs}
    with pytest.raises(GraphError, match=match):
        widen_gradually(net, node, **options)


def test_a_group_still_mixing_in_is_refused():
    net = GraphNet(build("lenet"))
    wide = widen_gradually(net, "conv2", 2, dropin_length=LENGTH, start=0)
    with pytest.raises(GraphError, match="width_dropin"):
        widen_gradually(wide, "conv2", 2, dropin_length=LENGTH, start=0)


@pytest.mark.parametrize("init", ["random", "net2net"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_mixing_on_the_readers_weights_matches_mixing_activations(case, init):
    """The executor applies a width DropIn feeding a conv or linear layer to that layer's
    weight (the speed of a step mid-widening rests on it); a flatten reads activations."""
    _, wide, x = _setup(case, init)
    readers = {wide.graph.consumers(n)[0] for n in wide.graph.nodes_of("width_dropin")}
    fused = {r for r in readers if wide.graph.op(r) in ("conv", "linear")}
    assert set(wide._mixed_reads) == fused
    plain = copy.deepcopy(wide)
    plain._mixed_reads = {}  # every width DropIn on its activations
    plain._schedules.clear()
    planner = Planner(wide.graph, seed=0)
    for iteration in (START, START + 3, START + 7, START + LENGTH):
        plan = planner.draw(iteration)
        out, ref = wide(x, plan), plain(x, plan)
        torch.testing.assert_close(out, ref)
        out.square().sum().backward(), ref.square().sum().backward()
        for (name, a), (_, b) in zip(wide.named_parameters(), plain.named_parameters(),
                                     strict=True):  # fmt: skip
            # a Net2Net stand-in sums in another order on the weight side: float rounding only
            scale = float(b.grad.abs().max())
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-5 * scale, msg=name)
        wide.zero_grad(), plain.zero_grad()
