import pytest

from grownet.zoo import build


@pytest.mark.parametrize(
    ("options", "nodes", "pool_shape"),
    [
        ({}, ["conv1_1", "bn1_1", "relu1_1", "pool1", "conv2_1", "pool2", "gap", "fc"], (32, 2, 2)),
        ({"convs": 2, "widths": [8]}, ["conv1_1", "conv1_2", "pool1"], None),
        ({"batchnorm": False, "in_shape": "3x32x32"}, ["conv1_1", "relu1_1"], (32, 8, 8)),
    ],
)
def test_structure(options, nodes, pool_shape):
    g = build("convnet", **options)
    assert set(nodes) <= set(g.nodes)
    assert g.shapes()["fc"] == (10,)
    if pool_shape:
        assert g.shapes()["pool2"] == pool_shape
    assert ("bn1_1" in g) == options.get("batchnorm", True)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"widths": []}, "widths must be a non-empty list"),
        ({"widths": [8, 0]}, "each width must be an integer >= 1, got 0"),
        ({"in_shape": "8x8"}, "in_shape must be"),
    ],
)
def test_mistakes(options, match):
    with pytest.raises(ValueError, match=match):
        build("convnet", **options)
