"""Growth surgery: mirrored blocks, append and double modes, asynchronous DropIn, removal."""

import pytest

from grownet.graph import GraphError, LayerSpec
from grownet.search.grow import (
    Growth,
    block_template,
    collapse_all,
    grow_stage,
    removal_order,
    shallower,
    weighted_depth,
)
from grownet.zoo import convnet

POSITIONS = ["relu1_1", "relu2_1"]


def grown(stages, mode="append", stagger=0):
    g, growth = convnet(), Growth.start(POSITIONS)
    for k in range(1, stages + 1):
        g, growth = grow_stage(g, growth, stage=k, mode=mode, dropin_length=100,
                               stagger=stagger, stage_iters=400)  # fmt: skip
    return g, growth


@pytest.mark.parametrize(
    ("stages", "mode", "depth"),
    [(0, "append", 3), (1, "append", 5), (2, "append", 7), (2, "double", 9), (3, "double", 17)],
)
def test_depth_grows_as_the_mode_says(stages, mode, depth):
    g, growth = grown(stages, mode)
    assert weighted_depth(g) == depth
    assert len(g.nodes_of("dropin")) == len(growth.blocks) == depth - 3
    assert g.shapes()["output"] == (10,)  # shapes kept: no resize needed
    assert not g.nodes_of("resize")


def test_block_mirrors_the_layers_at_the_position():
    layers = block_template(convnet(widths=(8, 24)), "relu2_1")
    assert [(n, s.op) for n, s in layers] == [
        ("conv2_1", "conv"), ("bn2_1", "batchnorm"), ("relu2_1", "relu")]  # fmt: skip
    assert layers[0][1].params["out_channels"] == 24
    assert layers[0][1].params["padding"] == [1, 1]


def test_asynchronous_dropin_staggers_the_starts():
    g, growth = grown(1, stagger=50)
    assert [g.spec(b["dropin"]).params["start"] for b in growth.blocks] == [0, 50]


def test_stagger_that_overruns_the_stage_is_refused():
    with pytest.raises(GraphError, match="lower stagger or raise stage_iters"):
        grow_stage(convnet(), Growth.start(POSITIONS), stage=1, mode="append",
                   dropin_length=300, stagger=200, stage_iters=400)  # fmt: skip


@pytest.mark.parametrize(
    ("position", "message"),
    [("pool1", "grow after the ReLU"), ("nope", "not a node")],
)
def test_bad_positions_are_named(position, message):
    with pytest.raises(GraphError, match=message):
        block_template(convnet(), position)


def test_even_kernels_cannot_keep_the_size():
    g = convnet().copy()
    g.set_spec("conv1_1", LayerSpec("conv", out_channels=16, kernel_size=2, padding=1))
    with pytest.raises(GraphError, match="even kernel"):
        block_template(g, "relu1_1")


def test_growth_state_round_trips():
    _, growth = grown(2)
    assert Growth.from_dict(growth.to_dict()) == growth


def test_removal_takes_the_newest_blocks_evenly():
    _, growth = grown(2)
    order = removal_order(growth)
    assert order[:2] == ["relu1_1_g2b0_dropin", "relu2_1_g2b0_dropin"]


@pytest.mark.parametrize("remove", [0, 1, 2, 4])
def test_shallower_is_a_plain_net_of_the_right_depth(remove):
    g, growth = grown(2)
    s = shallower(g, growth, remove)
    assert weighted_depth(s) == 7 - remove and not s.nodes_of("dropin")
    assert s.shapes()["output"] == (10,)


def test_collapse_all_keeps_every_grown_layer():
    g, _ = grown(2)
    assert weighted_depth(collapse_all(g)) == 7


def test_growth_mirrors_linear_blocks_of_an_mlp():
    from grownet.search.sweeps import narrowable
    from grownet.zoo import mlp

    base = mlp(widths=(32, 16), in_shape=(13,), num_classes=3)
    assert [(n, s.op) for n, s in block_template(base, "relu2")] == [
        ("fc2", "linear"), ("bn2", "batchnorm"), ("relu2", "relu")]  # fmt: skip
    g, growth = grow_stage(base, Growth.start(["relu1", "relu2"]), stage=1, mode="append",
                           dropin_length=10, stagger=0, stage_iters=100)  # fmt: skip
    assert weighted_depth(g) == 5 and g.shapes()["output"] == (3,)
    assert g.spec("fc1_g1b0").params["out_features"] == 32
    assert g.spec("fc2_g1b0").params["out_features"] == 16
    plain = collapse_all(g)
    assert narrowable(plain) == ["fc1", "fc1_g1b0", "fc2", "fc2_g1b0"]  # not the classifier
    assert weighted_depth(shallower(g, growth, 1)) == 4
