"""ResNet gates and shortcuts: depth dropout, stochastic depth, options A / B / conv1x1."""

import pytest

from grownet.zoo import build
from grownet.zoo.resnet import drop_schedule


def _gates(g):
    return [g.spec(n).params for n in g.nodes_of("gated_add")]


def test_plain_resnet_has_closed_gates_nowhere():
    gates = _gates(build("cifar_resnet", depth=20))
    assert len(gates) == 9
    assert {(p["kind"], p["drop_prob"], p["mode"]) for p in gates} == {
        ("depth_dropout", 0.0, "skip")
    }


@pytest.mark.parametrize(("depth", "units"), [(56, 27), (110, 54)])
def test_linear_decay(depth, units):
    gates = _gates(build("cifar_resnet", depth=depth, stochastic_depth="linear"))
    assert len(gates) == units and {p["kind"] for p in gates} == {"stochastic_depth"}
    probs = [p["drop_prob"] for p in gates]
    assert probs[0] == pytest.approx(0.5 / units)  # l = 1: (1 / L)(1 - p_L)
    assert probs[-1] == 0.5  # l = L: 1 - p_L
    assert probs == pytest.approx([l / units * 0.5 for l in range(1, units + 1)])  # noqa: E741
    assert probs[units // 3] > 0  # stochastic depth drops the transition units too


def test_uniform_and_p_last():
    probs = {
        p["drop_prob"] for p in _gates(build("resnet20", stochastic_depth="uniform", p_last=0.8))
    }
    assert len(probs) == 1 and probs.pop() == pytest.approx(0.2)
    last = _gates(build("resnet20", stochastic_depth="linear", p_last=0.2))[-1]["drop_prob"]
    assert last == pytest.approx(0.8)


def test_depth_dropout_exempts_the_first_unit_of_each_stage():
    g = build("cifar_resnet", depth=56, shortcut="conv1x1", depth_dropout=0.25)
    probs = {n: g.spec(n).params["drop_prob"] for n in g.nodes_of("gated_add")}
    exempt = {"layer1_0_add", "layer2_0_add", "layer3_0_add"}
    assert {n for n, p in probs.items() if p == 0.0} == exempt  # Guo & Gould: 3 of 27 units
    assert {p for n, p in probs.items() if n not in exempt} == {0.25}
    no_exempt = build("resnet56", depth_dropout=0.25, exempt_downsampling=False)
    assert {p["drop_prob"] for p in _gates(no_exempt)} == {0.25}
    exempt_sd = build("resnet56", stochastic_depth="linear", exempt_downsampling=True)
    assert exempt_sd.spec("layer2_0_add").params["drop_prob"] == 0.0


def test_depth_dropout_theoretical_saving_on_resnet56():
    # Guo & Gould Sec. IV-A: 24 droppable units, 3 exempt, shortcut 1/9 of a branch conv pair.
    probs = [
        p["drop_prob"] for p in _gates(build("resnet56", shortcut="conv1x1", depth_dropout=0.5))
    ]
    droppable = sum(p > 0 for p in probs)
    assert 1 - (droppable * (0.5 + 1 / 9) + (27 - droppable)) / 27 == pytest.approx(0.346, abs=1e-3)


def test_gate_mode_is_passed_on():
    assert {p["mode"] for p in _gates(build("resnet20", depth_dropout=0.5, mode="mask"))} == {
        "mask"
    }


_POOL_PAD = (["layer2_0_downsample_pool", "layer2_0_downsample_pad"], ["avgpool", "channel_pad"])
_CONV1X1 = ["layer2_0_shortcut_conv", "layer2_0_shortcut_bn", "layer2_0_shortcut_relu"]
SHORTCUTS = [
    ("A", *_POOL_PAD),
    ("identity", *_POOL_PAD),
    ("avgpool", *_POOL_PAD),
    ("B", ["layer2_0_downsample_0", "layer2_0_downsample_1"], ["conv", "batchnorm"]),
    ("conv1x1", _CONV1X1, ["conv", "batchnorm", "relu"]),
]


@pytest.mark.parametrize(("shortcut", "nodes", "ops"), SHORTCUTS)
def test_shortcuts(shortcut, nodes, ops):
    g = build("resnet20", shortcut=shortcut)
    assert [g.op(n) for n in nodes] == ops
    assert g.inputs("layer2_0_add") == ["layer2_0_bn2", nodes[-1]]
    assert g.inputs(nodes[0]) == ["layer1_2_relu"]
    if shortcut in ("A", "identity", "avgpool"):
        pool = g.spec("layer2_0_downsample_pool").params
        size = 2 if shortcut == "avgpool" else 1
        assert (pool["kernel_size"], pool["stride"]) == (size, 2)
    identity_input = [] if shortcut == "conv1x1" else ["layer1_0_bn2", "relu"]
    assert g.inputs("layer1_0_add") == (
        identity_input or ["layer1_0_bn2", "layer1_0_shortcut_relu"]
    )


def test_imagenet_bottleneck_puts_the_stride_on_the_3x3_conv():
    g = build("resnet50", zero_init_residual=True)
    assert [g.spec(f"layer2_0_conv{i}").params["stride"] for i in (1, 2, 3)] == [1, 2, 1]
    assert g.spec("layer1_0_downsample_0").params["stride"] == 1  # 64 -> 256 channels
    assert (
        g.spec("layer1_0_bn3").params["zero_init"]
        and not g.spec("layer1_0_bn2").params["zero_init"]
    )
    assert "layer1_0_downsample_0" not in build("resnet18")


def test_schedule_helper_directly():
    kind, probs = drop_schedule(
        "t",
        stage_first=[True, False, False, True],
        depth_dropout=0.0,
        stochastic_depth="linear",
        p_last=0.5,
        exempt_downsampling=None,
    )
    assert (kind, probs) == ("stochastic_depth", [0.125, 0.25, 0.375, 0.5])
