"""The DropIn paper's networks: node counts, and every DropIn wired new = the new layer, old =
the previous layer's output, both the same shape (Tables 1, 2, 4, 6)."""

from collections import Counter

import pytest

from grownet.zoo import build


def _ops(g):
    return Counter(g.op(n) for n in g.nodes)


@pytest.mark.parametrize(
    ("n", "nodes", "convs", "dropins"), [(1, 10, 2, 0), (5, 26, 10, 8), (15, 66, 30, 28)]
)
def test_lenet2n_node_counts(n, nodes, convs, dropins):
    g = build("lenet2n", n=n)
    ops = _ops(g)
    assert (len(g), ops["conv"], ops["dropin"], ops["linear"]) == (nodes, convs, dropins, 2)
    plain = build("lenet2n", n=n, dropin=False)
    assert (len(plain), _ops(plain)["dropin"]) == (nodes - dropins, 0)
    assert _ops(build("lenet2n", n=n, conv_relu=True))["relu"] == 2 * n + 1


def test_lenet2n_n1_is_lenet():
    ops = [build("lenet").op(n) for n in build("lenet").topological_order()]
    assert [build("lenet2n", n=1).op(n) for n in build("lenet2n", n=1).topological_order()] == ops


@pytest.mark.parametrize("conv_relu", [False, True])
def test_lenet2n_dropins_take_new_conv_and_previous_output(conv_relu):
    g = build("lenet2n", n=4, conv_relu=conv_relu, dropin_length=7500)
    shapes = g.shapes()
    out = "relu" if conv_relu else "conv"
    for s in (1, 2):
        assert g.inputs(f"dropin{s}_2") == [f"{out}{s}_2", f"{out}{s}_1"]
        for j in (3, 4):
            assert g.inputs(f"dropin{s}_{j}") == [f"{out}{s}_{j}", f"dropin{s}_{j - 1}"]
            assert g.inputs(f"conv{s}_{j}") == [f"dropin{s}_{j - 1}"]
        assert g.inputs(f"pool{s}") == [f"dropin{s}_4"]
        assert len({shapes[f"conv{s}_{j}"] for j in range(1, 5)}) == 1
    params = g.spec("dropin2_3").params
    assert (params["mode"], params["length"]) == ("gradual", 7500)


def test_cifar10_11layer_blocks():
    g = build("cifar10_11layer", dropin_length=8000)
    assert (_ops(g)["conv"], _ops(g)["dropin"], _ops(g)["lrn"]) == (11, 5, 10)
    for k in range(1, 6):
        assert g.inputs(f"dropin{k}_2") == [f"norm{k}_2", f"norm{k}_1"]
        assert g.inputs(f"conv{k}_2") == [f"norm{k}_1"]
    assert g.inputs("conv2_1") == ["dropin1_2"]
    assert g.inputs("conv6_1") == ["dropin5_2"]
    lrn = g.spec("norm3_1").params
    assert (lrn["size"], lrn["alpha"], lrn["beta"], lrn["region"]) == (3, 5e-5, 0.75, "within")
    conv = g.spec("conv4_2").params
    assert (conv["init"], conv["init_std"], conv["bias_value"]) == ("gaussian", 0.01, 0.0)
    assert g.shapes()["pool6"] == (64, 16, 16)
    pooled = build("cifar10_11layer", block_pools=True)
    assert pooled.inputs("pool2") == ["dropin2_2"] and pooled.shapes()["pool6"] == (64, 4, 4)
    assert _ops(build("cifar10_11layer", dropin=False))["dropin"] == 0
    scaled = build("cifar10_11layer", mxscale=3)  # memorandum Fig. 4
    assert {scaled.spec(f"dropin{k}_2").params["mxscale"] for k in range(1, 6)} == {3.0}
    assert g.spec("dropin1_2").params["mxscale"] == 1.0  # no scaling by default


def test_cifar10_3layer_follows_table2():
    g = build("cifar10_3layer")
    convs = [
        (g.spec(c).params["out_channels"], g.spec(c).params["kernel_size"])
        for c in g.nodes_of("conv")
    ]
    assert convs == [(32, 5), (32, 5), (64, 3)]
    assert [g.shapes()[f"pool{k}"][1:] for k in (1, 2, 3)] == [(16, 16), (8, 8), (4, 4)]
    assert build("cifar10_3layer", pool_kernel=2).shapes()["pool3"] == (64, 4, 4)


@pytest.mark.parametrize("variant", ["bvlc_alexnet", "caffenet"])
def test_alexnet_follows_the_prototxt(variant):
    g = build("alexnet", variant=variant)
    order = [n for n in g.topological_order() if n[:4] in ("norm", "pool")][:2]
    assert order == (["norm1", "pool1"] if variant == "bvlc_alexnet" else ["pool1", "norm1"])
    one = 0.1 if variant == "bvlc_alexnet" else 1.0
    biases = {n: g.spec(n).params["bias_value"] for n in g.nodes_of("conv", "linear")}
    assert biases == {
        "conv1": 0,
        "conv2": one,
        "conv3": 0,
        "conv4": one,
        "conv5": one,
        "fc6": one,
        "fc7": one,
        "fc8": 0,
    }
    assert [g.spec(n).params["init_std"] for n in ("conv1", "fc6", "fc7", "fc8")] == [
        0.01,
        0.005,
        0.005,
        0.01,
    ]
    assert [g.spec(n).params["groups"] for n in g.nodes_of("conv")] == [1, 2, 1, 2, 2]


@pytest.mark.parametrize(
    ("case", "drop7", "dropin7"), [("dropout", 1, 0), ("none", 0, 0), ("dropin", 0, 1)]
)
def test_alexnet_table7_fc7_cases(case, drop7, dropin7):
    g = build("alexnet", fc7_regularizer=case)
    assert ("drop7" in g, "dropin7" in g) == (bool(drop7), bool(dropin7))
    if dropin7:
        assert g.inputs("dropin7") == ["relu7", "drop6"]
        assert (g.spec("dropin7").params["mode"], g.spec("dropin7").params["p"]) == (
            "regularizing",
            0.5,
        )


def test_alexnet13_duplicates_every_conv():
    g = build("alexnet13")
    shapes = g.shapes()
    assert (_ops(g)["conv"] + _ops(g)["linear"], _ops(g)["dropin"]) == (13, 5)
    for k in range(1, 6):
        assert g.inputs(f"dropin{k}_2") == [f"relu{k}_2", f"relu{k}_1"]
        assert shapes[f"conv{k}_2"] == shapes[f"conv{k}_1"]
        spec1, spec2 = g.spec(f"conv{k}_1").params, g.spec(f"conv{k}_2").params
        assert spec2 == {**spec1, "stride": 1, "padding": spec1["kernel_size"] // 2}
    assert g.inputs("conv4_1") == ["dropin3_2"] and g.inputs("norm1") == ["dropin1_2"]


def test_vgg16_dropin_follows_table6():
    g = build("vgg16_dropin", dropin_length=60000)
    assert _ops(g)["dropin"] == 8
    for s in range(1, 6):
        assert g.inputs(f"dropin{s}_2") == [f"relu{s}_2", f"relu{s}_1"]
    for s in (3, 4, 5):
        assert g.inputs(f"dropin{s}_3") == [f"relu{s}_3", f"dropin{s}_2"]
        assert g.inputs(f"conv{s}_3") == [f"dropin{s}_2"]
    assert g.inputs("conv2_1") == ["pool1"] and g.inputs("pool1") == ["dropin1_2"]
    vgg8 = build("vgg8")
    assert [n for n in vgg8.nodes_of("conv")] == [f"conv{s}_1" for s in range(1, 6)]


@pytest.mark.parametrize("layout", ["sample", "blob"])
def test_lenet2n_dropin_layout_reaches_every_dropin(layout):
    g = build("lenet2n", n=3, dropin_layout=layout)
    assert {g.spec(d).params["layout"] for d in g.nodes_of("dropin")} == {layout}


def test_lenet2n_rejects_unknown_layout():
    with pytest.raises(ValueError, match="dropin_layout must be one of 'sample', 'blob'"):
        build("lenet2n", n=2, dropin_layout="nchw")


def test_lenet2n_takes_one_dropin_length_per_unit():
    from grownet.zoo import build

    g = build("lenet2n", n=3, dropin_length=[100, 200, 300, 400])
    assert [g.spec(x).params["length"] for x in g.nodes_of("dropin")] == [100, 200, 300, 400]
    with pytest.raises(ValueError, match="one length per DropIn unit \\(4 for this n\\), got 2"):
        build("lenet2n", n=3, dropin_length=[1, 2])
    with pytest.raises(ValueError, match="each dropin_length"):
        build("lenet2n", n=2, dropin_length=[1, 0])
