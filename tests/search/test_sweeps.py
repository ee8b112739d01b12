"""Reading a sweep: which ratios get checked, in which order, for width and depth sweeps."""

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from grownet.graph.executor import GraphNet
from grownet.layers import kept_channels
from grownet.search.runs import Trained
from grownet.search.spec import SweepSpec, VerifySpec
from grownet.search.sweeps import (
    estimate_and_check,
    narrowable,
    quantum,
    read_knee,
    sweep_units,
    thinned,
    width,
    with_width_dropout,
)
from grownet.zoo import build

FULL = Trained(None, {}, 0.98, (True,) * 9800 + (False,) * 200, "converged", 1.0, Path("."))
SWEEP = SweepSpec(max_rise=0.01)


def points(ratios, errors):
    return [{"ratio": r, "error": e} for r, e in zip(ratios, errors, strict=True)]


@pytest.mark.parametrize(
    ("kind", "ratios", "errors", "candidates", "knee"),
    [
        # width: ratio = share kept; checked from the knee back towards the full network
        ("width", [0.9, 0.5, 0.25, 0.1], [0.02, 0.021, 0.022, 0.2], [0.25, 0.5, 0.9], 0.25),
        # flat: no knee, but the smallest network is checked first, as a bound
        ("width", [0.9, 0.5, 0.25], [0.02, 0.021, 0.02], [0.25, 0.5, 0.9], None),
        # no plateau: nothing to check
        ("width", [0.9, 0.5], [0.2, 0.3], [], None),
        # depth: ratio = share taken out, so the knee is the largest ratio on the plateau
        ("depth", [0.25, 0.5, 0.75], [0.02, 0.021, 0.3], [0.5, 0.25], 0.5),
        ("dropin", [0.25, 0.5, 0.75], [0.02, 0.02, 0.021], [0.75, 0.5, 0.25], None),
    ],
)
def test_read_knee_orders_the_checks(kind, ratios, errors, candidates, knee):
    record, found = read_knee(kind, points(ratios, errors), FULL, SWEEP)
    assert found == candidates
    assert (record["knee"] or {}).get("ratio") == knee
    assert record["kind"] == kind and record["estimate"] is None
    if knee is not None:
        assert f"knee at ratio {knee:g}" in record["finding"]
    elif candidates:
        assert "no knee found" in record["finding"] and "checked as a bound" in record["finding"]


def test_read_knee_pairs_by_sample_and_names_the_swept_ratios():
    """With every point's correctness the test is paired (McNemar); a depth sweep's finding
    names its own ratios (share taken out), not the knee finder's share kept."""
    full = FULL.correct
    worse = (False,) * 1000 + full[1000:]  # 10 points worse, on samples the full net got right
    correct = [full, full, worse]
    errors = [1 - sum(c) / len(c) for c in correct]
    record, found = read_knee("depth", points([0.25, 0.5, 0.75], errors), FULL, SWEEP, correct)
    assert found == [0.5, 0.25] and record["knee"]["ratio"] == 0.5
    assert "knee at ratio 0.5" in record["finding"] and "from ratio 0.75 on" in record["finding"]
    assert "McNemar" in record["finding"]


@pytest.mark.parametrize(
    ("blocks", "tried"),
    [
        (2, [0.75]),  # 0.75 and 0.5 both take one of two blocks out; 0.25 takes none
        (4, [0.75, 0.5, 0.25]),  # three different networks, each checked (backoff 2)
    ],
)
def test_a_depth_check_never_trains_the_same_network_twice(blocks, tried):
    graph = build("mlp", widths=[4])
    full = Trained(graph, {}, 0.98, FULL.correct, "converged", 1.0, Path("."))
    worse = Trained(graph, {}, 0.5, (False,) * 10000, "converged", 1.0, Path("."))
    attempted = []

    def attempt(q):
        attempted.append(q)
        return {"ratio": q}, worse

    record = {"finding": ""}
    removes = lambda q: math.floor(blocks * q)  # noqa: E731
    spec = SimpleNamespace(verify=VerifySpec(backoff=2))
    result = estimate_and_check(spec, record, full, attempt, [0.75, 0.5, 0.25], print,
                                removes=removes, what="grown block")  # fmt: skip
    assert attempted == tried and [a["ratio"] for a in record["attempts"]] == tried
    assert not result.passed


# --------------------------------------------------------------------------- coupled groups


def test_sweep_units_take_each_resnet_stage_whole():
    graph = build("cifar_resnet", depth=8, shortcut="B")
    units = sweep_units(graph)
    assert units == [
        ("conv1", "layer1_0_conv2"),
        ("layer1_0_conv1",),
        ("layer2_0_conv1",),
        ("layer2_0_conv2", "layer2_0_downsample_0"),
        ("layer3_0_conv1",),
        ("layer3_0_conv2", "layer3_0_downsample_0"),
    ]
    assert narrowable(graph) == [n for u in units for n in u]  # the classifier is never one
    assert sweep_units(graph, ["layer1_0_conv2"]) == [("conv1", "layer1_0_conv2")]


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_the_swept_net_at_a_ratio_is_the_thinned_net(shortcut):
    """What a width sweep measures at ratio r (prefix width dropout) is what the check builds
    by surgery at r: every stage and layer narrowed to its first ceil(r * width) channels."""
    graph = build("cifar_resnet", depth=8, shortcut=shortcut)
    net = GraphNet(graph)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        net.train()(x)  # batchnorm statistics other than 0 and 1
    start = Trained(graph, net.state_dict(), 1.0, (True,), "converged", 0.0, Path("."))
    layers = narrowable(graph)
    swept = GraphNet(with_width_dropout(graph, layers, 0.5)).eval()
    swept.load_state_dict(start.state)
    thin_graph, thin_state = thinned(
        start, {n: kept_channels(width(graph, n), 0.5) for n in layers}
    )
    thin = GraphNet(thin_graph).eval()
    thin.load_state_dict(thin_state)
    assert thin_graph.shapes()["layer3_0_add"][0] == 32
    with torch.no_grad():
        torch.testing.assert_close(thin(x), swept(x), atol=1e-5, rtol=1e-5)


def torchvision_net(name: str, size: int):
    """A real torchvision network, auxiliary classifiers off (what a user's wrapper passes),
    imported at ``size`` pixels."""
    import torchvision

    from grownet.graph.fx_import import import_module

    torch.manual_seed(0)
    module = getattr(torchvision.models, name)(num_classes=10, aux_logits=False,
                                               init_weights=True).eval()  # fmt: skip
    graph, state = import_module(module, (3, size, size))
    return graph, state, torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))


def grouped_net(name: str):
    """A torchvision network whose bottlenecks hold grouped convs (ResNeXt, RegNet) at 32
    pixels, with batchnorm statistics other than 0 and 1."""
    import torchvision

    from grownet.graph.fx_import import import_module

    torch.manual_seed(0)
    module = torchvision.models.get_model(name, num_classes=10)
    with torch.no_grad():
        module.train()(torch.randn(4, 3, 32, 32))
    graph, state = import_module(module.eval(), (3, 32, 32))
    return graph, state, torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_a_grouped_conv_named_for_a_sweep_brings_its_group():
    graph, _, _ = grouped_net("regnet_x_400mf")
    grouped = [n for n in graph.nodes_of("conv") if graph.spec(n).params["groups"] > 1]
    (unit,) = sweep_units(graph, grouped[:1])
    assert unit == ("trunk_output_block1_block1_0_f_a_0",)  # the 1x1 conv the group starts at
    assert quantum(graph, unit) == graph.spec(grouped[0]).params["out_channels"] // graph.spec(
        grouped[0]).params["groups"]  # fmt: skip
    assert len(sweep_units(graph)) == len(set(sweep_units(graph))) == 27  # each group once


def small_densenet():
    """torchvision's DenseNet built small (two dense blocks of two layers, growth 8): its
    concatenated groups are read through the batchnorm after each concat."""
    import torchvision

    from grownet.graph.fx_import import import_module

    torch.manual_seed(0)
    module = torchvision.models.DenseNet(
        growth_rate=8, block_config=(2, 2), num_init_features=8, bn_size=2, num_classes=10
    )
    with torch.no_grad():  # batchnorm statistics other than 0 and 1
        module.train()(torch.randn(4, 3, 32, 32))
    graph, state = import_module(module.eval(), (3, 32, 32))
    return graph, state, torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def gpt_net():
    graph = build("gpt", depth=2, width=16, heads=4, in_shape=(8,), num_classes=11)
    tokens = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(1))
    return graph, GraphNet(graph).state_dict(), tokens


@pytest.mark.parametrize(
    ("make", "units"),
    [
        (lambda: torchvision_net("googlenet", 64), 57),  # inception branches, concats
        (lambda: torchvision_net("inception_v3", 75), 94),
        (gpt_net, 5),  # heads, MLP units and the residual stream
        (small_densenet, 10),  # zeroed at the readers behind each concat's batchnorm
        # grouped convs narrowed a whole conv group at a time, SE gates (regnet_y) coupled
        (lambda: grouped_net("regnet_x_400mf"), 27),
        (lambda: grouped_net("regnet_y_400mf"), 37),
    ],
)
def test_the_swept_net_is_the_thinned_net_on_real_networks(make, units):
    graph, state, x = make()
    layers = narrowable(graph)
    assert len(sweep_units(graph)) == units
    swept = GraphNet.with_state(with_width_dropout(graph, layers, 0.5), state).eval()
    start = Trained(graph, state, 1.0, (True,), "converged", 0.0, Path("."))
    keep = {n: kept_channels(width(graph, unit[0]), 0.5, quantum(graph, unit))
            for unit in sweep_units(graph) for n in unit}  # fmt: skip
    thin_graph, thin_state = thinned(start, keep)
    assert thin_graph.num_params() < 0.6 * graph.num_params()
    thin = GraphNet.with_state(thin_graph, thin_state).eval()
    with torch.no_grad():
        expected = swept(x)
        torch.testing.assert_close(thin(x), expected, atol=1e-5 * expected.abs().max().item(),
                                   rtol=1e-5)  # fmt: skip


def test_a_swin_sweeps_its_mlps_and_keeps_the_streams_its_window_attention_reads():
    """An imported Swin: each block's MLP hidden units are a unit; the residual streams reach
    window attention (and patch merging), which fixes their width, so they are refused."""
    import torchvision

    from grownet.graph.coupling import group_of
    from grownet.graph.fx_import import import_module

    torch.manual_seed(0)
    module = torchvision.models.swin_t(num_classes=10).eval()
    graph, state = import_module(module, (3, 40, 40))
    mlps = [n for n in graph.nodes_of("linear") if n.endswith("_mlp_0")]
    assert sweep_units(graph) == [(n,) for n in mlps] and len(mlps) == 12
    assert "'features_1_0_attn' (window_attention)" in group_of(graph, "features_0_0").problem
    # one MLP thinned (each narrowing rebuilds the 28M-parameter network)
    swept = GraphNet.with_state(with_width_dropout(graph, mlps[-1:], 0.5), state).eval()
    start = Trained(graph, state, 1.0, (True,), "converged", 0.0, Path("."))
    thin_graph, thin_state = thinned(start, {mlps[-1]: kept_channels(width(graph, mlps[-1]), 0.5)})
    thin = GraphNet.with_state(thin_graph, thin_state).eval()
    x = torch.randn(2, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(thin(x), swept(x), atol=1e-5, rtol=1e-5)
