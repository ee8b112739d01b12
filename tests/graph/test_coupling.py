"""Coupled channel groups: found stage by stage, narrowed as one unit, weights and function kept."""

import doctest

import pytest
import torch
import torchvision

from grownet.graph import GraphError, LayerSpec, NetGraph
from grownet.graph import coupling as coupling_module
from grownet.graph.coupling import (
    channel_groups,
    coupled_groups,
    group_norms,
    group_of,
    narrow_group,
    with_group_dropout,
)
from grownet.graph.executor import GraphNet
from grownet.graph.fx_import import import_module
from grownet.graph.plan import StepPlan
from grownet.graph.widen import widen_gradually, without_width_mixers
from grownet.zoo import build

X = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def resnet20(shortcut):
    return lambda: (build("cifar_resnet", depth=20, shortcut=shortcut), None)


def torchvision_resnet18():
    torch.manual_seed(0)
    return import_module(torchvision.models.resnet18(num_classes=10), (3, 32, 32))


class OneConvResidual(torch.nn.Module):
    """``bn(conv(x)) + x``: a conv that reads the very channels it writes back into."""

    def __init__(self, width):
        super().__init__()
        self.conv = torch.nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(width)

    def forward(self, x):
        return (self.bn(self.conv(x)) + x).relu()


def one_conv_residual():
    torch.manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                        OneConvResidual(16), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(16, 10))  # fmt: skip
    return import_module(net.train(), (3, 32, 32))


def stage(first, blocks, shortcut=None):
    """A stage's producers: ``first`` (stem conv, or the first block's conv2), the shortcut
    projection or pad, then each later block's last conv."""
    prefix = first.split("_")[0]
    rest = [f"{prefix}_{b}_conv2" for b in range(1, blocks)]
    return (first, *([shortcut] if shortcut else []), *rest)


NETS = {
    "resnet20-A": (
        resnet20("A"),
        [
            (("conv1", "layer1_0_conv2", "layer1_1_conv2", "layer1_2_conv2"), 16),
            (stage("layer2_0_conv2", 3, "layer2_0_downsample_pad"), 32),
            (stage("layer3_0_conv2", 3, "layer3_0_downsample_pad"), 64),
        ],
    ),
    "resnet20-B": (
        resnet20("B"),
        [
            (("conv1", "layer1_0_conv2", "layer1_1_conv2", "layer1_2_conv2"), 16),
            (stage("layer2_0_conv2", 3, "layer2_0_downsample_0"), 32),
            (stage("layer3_0_conv2", 3, "layer3_0_downsample_0"), 64),
        ],
    ),
    "resnet20-conv1x1": (
        resnet20("conv1x1"),
        [
            ((f"layer{s}_{b}_conv2", f"layer{s}_{b}_shortcut_conv"), w)
            for s, w in ((1, 16), (2, 32), (3, 64))
            for b in range(3)
        ],
    ),
    "one-conv-residual": (one_conv_residual, [(("_0", "_3_conv"), 16)]),
    "torchvision-resnet18": (
        torchvision_resnet18,
        [
            (("conv1", "layer1_0_conv2", "layer1_1_conv2"), 64),
            *[
                ((f"layer{s}_0_conv2", f"layer{s}_0_downsample_0", f"layer{s}_1_conv2"), w)
                for s, w in ((2, 128), (3, 256), (4, 512))
            ],
        ],
    ),
}


@pytest.fixture(scope="module", params=list(NETS))
def net_case(request):
    make, groups = NETS[request.param]
    graph, state = make()
    net = GraphNet(graph)
    if state is not None:
        net.load_state_dict(state)
    else:  # BN statistics that are not 0 and 1, so a wrong row would show
        with torch.no_grad():
            net.train()(X)
    return request.param, net.eval(), groups


def test_groups_are_the_stages(net_case):
    _, net, want = net_case
    found = coupled_groups(net.graph)
    assert [(g.producers, g.width) for g in found] == want
    assert all(g.problem is None for g in found)


def test_narrowing_every_group_keeps_weights_and_function(net_case):
    _, net, _ = net_case
    thin, zeroed = net, net.graph
    groups = coupled_groups(net.graph)
    for group in groups:  # stage by stage: a channel pad never shrinks below its input
        keep = group.width // 4 + 1
        thin = narrow_group(thin, group.name, keep)
        zeroed = with_group_dropout(zeroed, group, keep / group.width)
    thin.graph.validate()
    old, new = net.layers, thin.layers
    for group in groups:
        keep = group.width // 4 + 1
        for node in group.producers:  # a projection's input columns may be narrowed too
            if net.graph.op(node) == "conv":
                w = new[node].weight
                assert torch.equal(w, old[node].weight[:keep, : w.shape[1]])
        for node, _ in group.carriers:  # batchnorms only, in these residual networks
            for t in ("weight", "bias", "running_mean", "running_var"):
                assert torch.equal(getattr(new[node], t), getattr(old[node], t)[:keep])
        for node, _ in group.readers:  # no concats here: every reader reads from column 0
            if node not in group.producers and all(node not in g.producers for g in groups):
                assert torch.equal(new[node].weight, old[node].weight[:, :keep])
    # the narrowed net computes what the full one does with the dropped channels zeroed
    # wherever they are read (the width sweep's prefix width dropout)
    reference = GraphNet(zeroed).eval()
    reference.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(thin(X), reference(X), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(net(X), reference(X), atol=1e-3)  # something was dropped


def test_zeroing_reader_columns_matches_narrowing_a_projection_stage():
    """Independent of the sweep's width dropout: zero the readers' columns of the dropped
    channels (the trick of test_surgery), and narrowing stage 2 of an option-B ResNet is exact."""
    net = GraphNet(build("cifar_resnet", depth=20, shortcut="B")).eval()
    group = group_of(net.graph, "layer2_1_conv2")
    with torch.no_grad():
        for node, _ in group.readers:
            net.layers[node].weight[:, 20:] = 0.0
    thin = narrow_group(net, group, 20)
    assert thin.graph.num_params() < net.graph.num_params()
    with torch.no_grad():
        torch.testing.assert_close(thin(X), net(X), atol=1e-5, rtol=1e-5)


class InvertedResidual(torch.nn.Module):
    """MobileNetV3's block: expand, depthwise, squeeze-and-excitation, project, identity add."""

    def __init__(self, width, hidden):
        super().__init__()
        nn = torch.nn
        self.expand = nn.Sequential(nn.Conv2d(width, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU())
        self.depthwise = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden), nn.BatchNorm2d(hidden),
            nn.Hardswish(),
        )  # fmt: skip
        self.squeeze = nn.Conv2d(hidden, 4, 1)
        self.excite = nn.Conv2d(4, hidden, 1)
        self.project = nn.Sequential(nn.Conv2d(hidden, width, 1), nn.BatchNorm2d(width))

    def forward(self, x):
        y = self.depthwise(self.expand(x))
        gate = self.excite(self.squeeze(y.mean((2, 3), keepdim=True)).relu()).sigmoid()
        return self.project(y * gate) + x


class ConvNeXtBlock(torch.nn.Module):
    """ConvNeXt's block without its layer norm: depthwise conv, channels-last linear layers,
    a layer scale, the residual add."""

    def __init__(self, width):
        super().__init__()
        self.depthwise = torch.nn.Conv2d(width, width, 7, padding=3, groups=width)
        self.up, self.down = torch.nn.Linear(width, 4 * width), torch.nn.Linear(4 * width, width)
        self.act = torch.nn.GELU()
        self.scale = torch.nn.Parameter(torch.randn(width, 1, 1))

    def forward(self, x):
        y = self.down(self.act(self.up(self.depthwise(x).permute(0, 2, 3, 1))))
        return x + self.scale * y.permute(0, 3, 1, 2)


def imported(*layers):
    """``layers`` after a 3 -> 16 stem, then a classifier, imported (random weights)."""
    torch.manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), *layers,
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))  # fmt: skip
    return import_module(net.train(), (3, 32, 32))


# (network, a producer of the group, the group's producers, its carriers' ops)
NEW_COUPLINGS = {
    "depthwise-and-se": (
        lambda: imported(InvertedResidual(16, 24)),
        "_2_expand_0",
        ("_2_expand_0", "_2_excite"),
        ["batchnorm", "conv", "batchnorm"],
    ),
    "se-stream": (
        lambda: imported(InvertedResidual(16, 24), InvertedResidual(16, 32)),
        "_0",
        ("_0", "_2_project_0", "_3_project_0"),
        ["batchnorm", "batchnorm", "batchnorm"],
    ),
    "channels-last-and-layer-scale": (
        lambda: imported(ConvNeXtBlock(16), ConvNeXtBlock(16)),
        "_0",
        ("_0", "_2_down", "_3_down"),
        ["batchnorm", "conv", "param", "conv", "param"],
    ),
    "channels-last-hidden": (
        lambda: imported(ConvNeXtBlock(16)),
        "_2_up",
        ("_2_up",),
        [],
    ),
}


def _warmed(make):
    """The graph ``make`` builds and its network in eval mode, with batchnorm statistics that
    are not 0 and 1 (one training-mode pass)."""
    graph, state = make()
    net = GraphNet(graph)
    net.load_state_dict(state)
    with torch.no_grad():
        net.train()(X)
    return graph, net.eval()


@pytest.mark.parametrize("case", list(NEW_COUPLINGS))
def test_new_couplings_narrow_keeping_the_kept_channels_function(case):
    make, producer, producers, carriers = NEW_COUPLINGS[case]
    graph, net = _warmed(make)
    group = group_of(graph, producer)
    assert (group.producers, [graph.op(n) for n, _ in group.carriers]) == (producers, carriers)
    assert group.coupled and group.problem is None
    keep = group.width // 2 + 1
    thin = narrow_group(net, group, keep)
    for node, dim in group.carriers:  # each per-channel tensor keeps the kept entries
        for name, old in net.layers[node].state_dict().items():
            if old.dim() > dim:
                assert torch.equal(thin.layers[node].state_dict()[name], old.narrow(dim, 0, keep))
    reference = GraphNet(with_group_dropout(graph, group, keep / group.width)).eval()
    reference.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(thin(X), reference(X), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(net(X), reference(X), atol=1e-4)  # something was dropped


@pytest.mark.parametrize("init", ["random", "net2net"])
@pytest.mark.parametrize(
    ("make", "producer"),
    [
        (NEW_COUPLINGS["depthwise-and-se"][0], "_2_expand_0"),
        (NEW_COUPLINGS["channels-last-and-layer-scale"][0], "_0"),
        (lambda: inception_toy(), "b2_2"),  # mixed in before the concats, read at offsets
        (lambda: dense_toy(), "stem"),  # mixed in at the readers behind each concat's BN
    ],
    ids=["depthwise-and-se", "channels-last-and-layer-scale", "inception-concats",
         "densenet-concats"],
)
def test_new_couplings_widen_keeping_the_function(make, producer, init):
    """Widening mixes the new channels in from zero: at the start the function is the old
    one; the permutes around a channels-last mixer leave with it."""
    graph, state = make()
    net = GraphNet(graph)
    net.load_state_dict(state)
    net.eval()
    wide = widen_gradually(net, producer, 3, dropin_length=10, start=0, init=init).eval()
    group = group_of(graph, producer)
    assert wide.shapes[producer][group.dims[producer]] == group.width + 3
    with torch.no_grad():
        torch.testing.assert_close(wide(X), net(X), atol=1e-5, rtol=1e-5)
    assert sorted(without_width_mixers(wide.graph).nodes) == sorted(graph.nodes)


def test_a_layer_norm_narrows_with_its_channels_as_the_sweep_zeroes_them():
    """ConvNeXt's layer norm normalises over the kept channels once narrowed, with the kept
    affine entries; the sweep's zeroed network normalises the same prefix
    (:mod:`grownet.layers.prefix_norm`), so the two are equal, where zeroing alone left the
    removed channels in the norm's statistics."""
    torch.manual_seed(0)
    graph, state = import_module(torchvision.models.convnext_tiny(num_classes=10), (3, 32, 32))
    net = GraphNet(graph)
    net.load_state_dict(state)
    net.eval()
    group = group_of(graph, "features_0_0")
    norms = group_norms(graph, group)
    assert len(norms) == 5 and all(graph.op(n) == "layer_norm" for n in norms)
    thin = narrow_group(net, group, 90)
    assert torch.equal(thin.layers[norms[1]].weight, net.layers[norms[1]].weight[:90])
    reference = GraphNet(with_group_dropout(graph, group, 90 / 96)).eval()
    reference.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(thin(X), reference(X), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("torchvision_net", "narrowable"),
    [("mobilenet_v3_small", 27), ("efficientnet_b0", 40), ("convnext_tiny", 22)],
)
def test_imported_mobile_networks_narrow_almost_everywhere(torchvision_net, narrowable):
    """Every group but the classifier's (the output) narrows; before depthwise convs, SE
    products, permutes and layer scales coupled, most were refused."""
    graph, _ = import_module(getattr(torchvision.models, torchvision_net)(), (3, 32, 32))
    groups = channel_groups(graph)
    assert [g.problem for g in groups if g.problem] == [
        "its channels are the network's output (they reach 'output')"
    ]
    assert len(groups) == narrowable + 1


class DenseToy(torch.nn.Module):
    """DenseNet in small: two dense layers (BN-ReLU-conv on the growing concatenation), the
    block's concatenation through a transition (BN-ReLU-conv-pool), a classifier."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.norms = nn.ModuleList([nn.BatchNorm2d(8), nn.BatchNorm2d(12)])
        self.convs = nn.ModuleList([nn.Conv2d(8, 4, 3, padding=1), nn.Conv2d(12, 4, 3, padding=1)])
        self.transition = nn.Sequential(nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 6, 1),
                                        nn.AvgPool2d(2))  # fmt: skip
        self.fc = nn.Linear(6, 10)

    def forward(self, x):
        features = [self.stem(x)]
        for norm, conv in zip(self.norms, self.convs, strict=True):
            features.append(conv(norm(torch.cat(features, 1)).relu()))
        return self.fc(self.transition(torch.cat(features, 1)).mean((2, 3)))


class InceptionToy(torch.nn.Module):
    """Inception in small: parallel branches concatenated, then a block whose pooled branch
    is that concatenation, concatenated again (offsets nest), then a reader."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.b1 = nn.Conv2d(8, 4, 1)
        self.b2 = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1))
        self.b3 = nn.Conv2d(8, 2, 1)
        self.d1 = nn.Conv2d(12, 4, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        pooled = torch.nn.functional.max_pool2d(x, 3, 1, 1)
        y = torch.cat([self.b1(x).relu(), self.b2(x).relu(), self.b3(pooled).relu()], 1)
        z = torch.cat([self.d1(y).relu(), torch.nn.functional.max_pool2d(y, 3, 1, 1)], 1)
        return self.fc(z.mean((2, 3)))


def toy(module):
    def make():
        torch.manual_seed(0)
        return import_module(module().train(), (3, 32, 32))

    return make


dense_toy = toy(DenseToy)


def grouped_toy():
    """A ResNeXt-style bottleneck middle: 1x1 conv to 16, a 3x3 conv in 4 groups of 4."""
    nn = torch.nn
    grouped = nn.Conv2d(16, 16, 3, padding=1, groups=4)
    return imported(nn.Conv2d(16, 16, 1), nn.BatchNorm2d(16), nn.ReLU(), grouped,
                    nn.BatchNorm2d(16), nn.ReLU())  # fmt: skip


def zeroed_columns(net, group, keep):
    """``net`` with every reader's columns of the group's channels ``keep..`` zeroed, at the
    offset the channels sit at there: then they contribute nothing, whatever a batchnorm
    after a concat makes of them, and narrowing them away must compute the same."""
    with torch.no_grad():
        for node, block in group.readers:
            start = group.offsets.get(node, 0)
            net.layers[node].weight[:, (start + keep) * block : (start + group.width) * block] = 0
    return net


inception_toy = toy(InceptionToy)

# (network, a producer of the group, the concats it reaches, where it sits in each)
THROUGH_CONCATS = {
    "dense-stem": (dense_toy, "stem", {"cat": 0, "cat_1": 0, "cat_2": 0}),
    "dense-layer-1": (dense_toy, "convs_0", {"cat_1": 8, "cat_2": 8}),
    "dense-layer-2": (dense_toy, "convs_1", {"cat_2": 12}),
    "inception-branch": (inception_toy, "b2_2", {"cat": 4, "cat_1": 8}),
    "inception-pool-branch": (inception_toy, "b3", {"cat": 10, "cat_1": 14}),
    "inception-stem": (inception_toy, "stem_0", {}),
}


@pytest.mark.parametrize("case", list(THROUGH_CONCATS))
def test_narrowing_through_concats_keeps_the_kept_channels_function(case):
    make, producer, concats = THROUGH_CONCATS[case]
    graph, net = _warmed(make)
    group = group_of(graph, producer)
    assert group.problem is None and group.coupled == bool(concats)
    assert {c: group.offsets[c] for c in group.concats} == concats
    keep = group.width // 2
    thin = narrow_group(net, group, keep)
    for node, _ in group.carriers:  # a batchnorm after a concat loses the dropped rows only
        start, size = group.offsets.get(node, 0), net.layers[node].weight.shape[0]
        kept = [*range(start + keep), *range(start + group.width, size)]
        assert torch.equal(thin.layers[node].running_mean, net.layers[node].running_mean[kept])
    with torch.no_grad():
        # the sweep's zeroing: before the concats, or behind a batchnorm after them at the
        # readers over the group's span
        swept = GraphNet(with_group_dropout(graph, group, keep / group.width)).eval()
        swept.load_state_dict(net.state_dict())
        torch.testing.assert_close(thin(X), swept(X), atol=1e-5, rtol=1e-5)
        full = net(X)
        reference = zeroed_columns(net, group, keep)(X)
        torch.testing.assert_close(thin(X), reference, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(full, reference, atol=1e-4)  # something was dropped


def test_densenet121_narrows_every_group_but_the_classifier():
    """Before concats carried offsets, 58 of its 121 groups narrowed; now all but the
    output's, and a block-1 layer's channels narrow exactly through three dense blocks'
    worth of concatenations, transition batchnorms included."""
    graph, state = import_module(torchvision.models.densenet121(num_classes=10), (3, 32, 32))
    groups = channel_groups(graph)
    assert [g.name for g in groups if g.problem] == ["classifier"]
    net = GraphNet(graph)
    net.load_state_dict(state)
    net.eval()
    group = group_of(graph, "features_denseblock1_denselayer1_conv2")
    assert len(group.concats) == 6 and group.zeroed_behind
    thin = narrow_group(net, group, 20)
    with torch.no_grad():
        torch.testing.assert_close(thin(X), zeroed_columns(net, group, 20)(X), atol=1e-5,
                                   rtol=1e-5)  # fmt: skip


def concat_net():
    g = NetGraph()
    x = g.add("input", LayerSpec("input", shape=[3, 8, 8]))
    a = g.add("a", LayerSpec("conv", out_channels=4, kernel_size=3, padding=1), [x])
    b = g.add("b", LayerSpec("conv", out_channels=4, kernel_size=3, padding=1), [x])
    c = g.add("cat", LayerSpec("concat"), [a, b])
    s = g.add("s", LayerSpec("conv", out_channels=8, kernel_size=1), [x])
    y = g.add("sum", LayerSpec("add"), [c, s])
    y = g.add("gap", LayerSpec("global_avgpool"), [y])
    y = g.add("fc", LayerSpec("linear", out_features=2), [y])
    g.add("output", LayerSpec("output"), [y])
    return g


CAT_JOINED = "concat 'cat'.* an add or product"  # an add of a concatenation and a conv


@pytest.mark.parametrize(
    ("make", "call", "message"),
    [
        (resnet20("B"), lambda n: narrow_group(n, "fc", 5), "network's output"),
        (resnet20("B"), lambda n: narrow_group(n, "bn1", 5), "'bn1' is a batchnorm"),
        (resnet20("B"), lambda n: narrow_group(n, "conv1", 17), r"keep must be in 1\.\.16"),
        (resnet20("A"), lambda n: narrow_group(n, "layer2_1_conv2", 8), "narrow the group it pads"),
        (resnet20("A"), lambda n: narrow_group(n, "conv1", [1, 0]), "keep a count"),
        (lambda: (concat_net(), None), lambda n: narrow_group(n, "a", 2), CAT_JOINED),
        (lambda: (concat_net(), None), lambda n: narrow_group(n, "s", 2), CAT_JOINED),
        (grouped_toy, lambda n: narrow_group(n, "_2", 6), "4 at a time; keep a multiple of 4"),
        (grouped_toy, lambda n: narrow_group(n, "_2", [4, 5, 6, 7]), "keep a multiple of 4"),
    ],
)
def test_refusals_name_the_reason(make, call, message):
    with pytest.raises(GraphError, match=message):
        call(GraphNet(make()[0]))


def test_a_grouped_conv_carries_its_inputs_channels_a_conv_group_at_a_time():
    """ResNeXt's grouped conv (as many outputs as inputs): the layer before it, the grouped
    conv and their batchnorms are one group, narrowed by whole conv groups to what the sweep
    computes; a DenseNet toy's stem is swept through its concats at the readers."""
    graph, net = _warmed(grouped_toy)
    group = group_of(graph, "_2")
    assert (group.quantum, group.problem, group.zeroed_behind) == (4, None, False)
    assert [graph.op(n) for n, _ in group.carriers] == ["batchnorm", "conv", "batchnorm"]
    thin = narrow_group(net, group, 8)
    assert thin.graph.spec("_5").params["groups"] == 2  # two of its four conv groups
    swept = GraphNet(with_group_dropout(graph, group, 0.5)).eval()  # 0.5 of 4 conv groups
    swept.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(thin(X), swept(X), atol=1e-5, rtol=1e-5)
    assert group_of(dense_toy()[0], "stem").zeroed_behind


@pytest.mark.parametrize("reverse", [False, True])
def test_a_densenets_groups_widen_one_after_another_keeping_the_function(reverse):
    """A width stage widens group after group: a later group crosses the width DropIns an
    earlier one left behind each concat, whose spans move when the later group's channels
    come before theirs."""
    graph, net = _warmed(dense_toy)
    names = [g.name for g in channel_groups(graph) if not g.problem]
    wide = net
    for i, name in enumerate(names[::-1] if reverse else names):
        wide = widen_gradually(wide, name, 2, dropin_length=10, start=0, seed=i).eval()
    assert len(wide.graph.nodes_of("width_dropin")) > len(names)
    with torch.no_grad():
        torch.testing.assert_close(wide(X), net(X), atol=1e-5, rtol=1e-5)


def test_a_grouped_conv_widens_by_whole_conv_groups_keeping_the_function():
    _, net = _warmed(grouped_toy)
    wide = widen_gradually(net, "_2", 8, dropin_length=10, start=0).eval()
    assert wide.graph.spec("_5").params["groups"] == 6  # two new conv groups of 4
    with torch.no_grad():
        torch.testing.assert_close(wide(X), net(X), atol=1e-5, rtol=1e-5)
    with pytest.raises(GraphError, match="give k a multiple of 4, got 6"):
        widen_gradually(net, "_2", 6, dropin_length=10, start=0)
    with pytest.raises(GraphError, match="a Net2Net split would change the function"):
        widen_gradually(net, "_2", 8, dropin_length=10, start=0, init="net2net")


def test_every_channel_set_is_a_group_and_plain_layers_are_not_coupled():
    graph = build("cifar_resnet", depth=20, shortcut="B")
    groups = channel_groups(graph)
    producers = [p for g in groups for p in g.producers]
    assert sorted(producers) == sorted(graph.nodes_of("conv", "linear"))
    single = group_of(graph, "layer1_0_conv1")
    assert not single.coupled and single.readers == (("layer1_0_conv2", 1),)


def test_docstring_examples_run():
    result = doctest.testmod(coupling_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


STREAMS = {  # a transformer's residual stream: its first producer, and every producer
    "gpt": (
        lambda: build("gpt", depth=2, width=16, heads=2, in_shape=(6,), num_classes=11),
        "tok",
        ("tok", "attn1", "fc1_2", "attn2", "fc2_2"),
    ),
    "gpt-rms-untied": (
        lambda: build(
            "gpt", depth=1, width=16, heads=4, in_shape=(6,), num_classes=11, norm="rms",
            tie=False, bias=True,
        ),
        "tok",
        ("tok", "attn1", "fc1_2"),
    ),
    "vit": (  # the patch grid reshaped to tokens, the class token prepended, then selected
        lambda: build("vit", depth=2, width=16, heads=2, in_shape=(1, 8, 8), patch=4),
        "patches",
        ("patches", "attn1", "fc1_2", "attn2", "fc2_2"),
    ),
}


def _stream_input(graph, generator):
    if graph.op(graph.topological_order()[1]) == "embedding":
        return torch.randint(0, 11, (3, *graph.input_shape), generator=generator)
    return torch.randn(3, *graph.input_shape, generator=generator)


@pytest.mark.parametrize("share", [0.75, 0.5, 0.25])
@pytest.mark.parametrize("case", list(STREAMS))
def test_a_residual_stream_narrows_to_what_its_sweep_computes(case, share):
    """Every producer, norm and reader of the stream narrows together (attention layers
    keep their heads' size), and the sweep's zeroing with its norms over the kept prefix
    computes exactly that network."""
    make, name, producers = STREAMS[case]
    graph = make()
    torch.manual_seed(0)
    net = GraphNet(graph).eval()
    group = group_of(graph, name)
    assert (group.name, group.producers, group.problem) == (name, producers, None)
    keep = round(share * group.width)
    thin = narrow_group(net, group, keep).eval()
    assert thin.graph.spec("attn1").params["head_dim"] == 16 // graph.spec("attn1").params["heads"]
    swept = GraphNet(with_group_dropout(graph, group, share)).eval()
    swept.load_state_dict(net.state_dict())
    x = _stream_input(graph, torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(thin(x), swept(x), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(thin(x), net(x), atol=1e-3)


@pytest.mark.parametrize("init", ["random", "net2net"])
@pytest.mark.parametrize("case", list(STREAMS))
def test_a_residual_stream_widens_keeping_the_function(case, init):
    """New units start off in the norms' statistics as well as at the readers; a head tied to
    the token table cannot take a Net2Net split's halved columns, so that is refused."""
    make, name, _ = STREAMS[case]
    graph = make()
    torch.manual_seed(0)
    net = GraphNet(graph).eval()
    tied = graph.op("head") == "linear" and graph.spec("head").params["tie"]
    if init == "net2net" and tied:
        with pytest.raises(GraphError, match="'head' reads these channels through the embedding"):
            widen_gradually(net, name, 8, dropin_length=10, start=0, init=init)
        return
    wide = widen_gradually(net, name, 8, dropin_length=10, start=0, init=init).eval()
    x = _stream_input(graph, torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(wide(x), net(x), atol=1e-5, rtol=1e-5)
        wide.set_plan(StepPlan(iteration=10))  # every unit handed over: a different function
        assert not torch.allclose(wide(x), net(x), atol=1e-3)
    plain = without_width_mixers(wide.graph)
    assert all(plain.spec(n).params["old"] == 0 for n in plain.nodes_of("layer_norm", "rms_norm"))
