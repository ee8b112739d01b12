import json

import pytest

from grownet.graph import GraphError, LayerSpec, NetGraph


def small_cnn() -> NetGraph:
    g = NetGraph()
    x = g.add("input", LayerSpec("input", shape=[1, 12, 12]))
    x = g.add("conv1", LayerSpec("conv", out_channels=4, kernel_size=3, padding=1), [x])
    x = g.add("bn1", LayerSpec("batchnorm"), [x])
    x = g.add("relu1", LayerSpec("relu"), [x])
    y = g.add("conv2", LayerSpec("conv", out_channels=4, kernel_size=3, padding=1), [x])
    x = g.add("drop", LayerSpec("dropin", length=10), [y, x])
    x = g.add("pool", LayerSpec("maxpool", kernel_size=2), [x])
    x = g.add("flat", LayerSpec("flatten"), [x])
    x = g.add("fc", LayerSpec("linear", out_features=3), [x])
    g.add("output", LayerSpec("output"), [x])
    return g


def test_shapes_params_and_macs():
    g = small_cnn()
    shapes = g.validate()
    assert shapes["conv1"] == (4, 12, 12)
    assert shapes["pool"] == (4, 6, 6)
    assert shapes["flat"] == (144,)
    costs = g.costs()
    assert costs["conv1"].params == 4 * 1 * 9 + 4
    assert costs["conv1"].macs == 4 * 12 * 12 * 9
    assert costs["bn1"].params == 8
    assert costs["fc"].params == 144 * 3 + 3
    assert g.num_params() == sum(c.params for c in costs.values()) == 40 + 8 + 148 + 435
    assert g.macs() == 4 * 144 * 9 + 4 * 144 * 36 + 144 * 3


def test_inputs_are_in_port_order():
    g = small_cnn()
    assert g.inputs("drop") == ["conv2", "relu1"]
    assert sorted(g.consumers("relu1")) == ["conv2", "drop"]


def test_json_round_trip_is_exact(tmp_path):
    g = small_cnn()
    path = tmp_path / "graph.json"
    g.to_json(path)
    back = NetGraph.from_json(path)
    assert back == g
    assert back.to_json() == g.to_json()
    assert back.spec("conv1") == g.spec("conv1")
    assert back.inputs("drop") == ["conv2", "relu1"]
    assert NetGraph.from_json(g.to_json()) == g


@pytest.mark.parametrize(
    ("op", "params", "match"),
    [
        ("convolution", {}, "unknown layer op 'convolution'"),
        ("conv", {"out_channels": 3}, "needs parameter 'kernel_size'"),
        ("conv", {"out_channels": 3, "kernel_size": 3, "strides": 2}, "no parameter 'strides'"),
    ],
)
def test_bad_specs_name_the_problem(op, params, match):
    with pytest.raises(GraphError, match=match):
        LayerSpec(op, **params)


def test_spec_equality_survives_tuples():
    assert LayerSpec("resize", shape=(3, 4, 4)) == LayerSpec("resize", shape=[3, 4, 4])


def _two_branch(second_shape_changer: LayerSpec) -> NetGraph:
    g = NetGraph()
    x = g.add("input", LayerSpec("input", shape=[2, 8, 8]))
    a = g.add("conv_a", LayerSpec("conv", out_channels=2, kernel_size=3, padding=1), [x])
    b = g.add("shrink", second_shape_changer, [x])
    s = g.add("join", LayerSpec("dropin"), [a, b])
    g.add("output", LayerSpec("output"), [s])
    return g


def test_shape_mismatch_names_node_and_shapes():
    g = _two_branch(LayerSpec("maxpool", kernel_size=2))
    with pytest.raises(GraphError) as err:
        g.validate()
    msg = str(err.value)
    assert "'join'" in msg and "(2, 8, 8)" in msg and "(2, 4, 4)" in msg and "resize" in msg


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda g: g.nx.add_edge("fc", "conv1", port=1), "cycle"),
        (lambda g: g.add("stray", LayerSpec("relu"), ["relu1"]), "'stray' does not lead"),
        (lambda g: g.nx.remove_edge("conv2", "drop"), "'drop'"),
        (lambda g: g.add("output2", LayerSpec("output"), ["fc"]), "exactly one 'output'"),
        (
            lambda g: g.add("lonely", LayerSpec("input", shape=[3]), []) and None,
            "exactly one 'input'",
        ),
    ],
)
def test_structural_errors(mutate, match):
    g = small_cnn()
    mutate(g)
    with pytest.raises(GraphError, match=match):
        g.validate()


@pytest.mark.parametrize(
    ("node", "spec", "inputs", "match"),
    [
        ("conv.1", LayerSpec("relu"), ["input"], "not valid"),
        ("conv1", LayerSpec("relu"), ["input"], "already exists"),
        ("new", LayerSpec("relu"), ["nowhere"], "'nowhere' is not in the graph"),
    ],
)
def test_add_errors(node, spec, inputs, match):
    with pytest.raises(GraphError, match=match):
        small_cnn().add(node, spec, inputs)


def test_linear_maps_the_last_dimension_as_nn_linear_does():
    # a transformer's tokens (S, D), a channels-last ConvNeXt block's (H, W, C)
    g = NetGraph()
    x = g.add("input", LayerSpec("input", shape=[3, 4, 4]))
    x = g.add("fc", LayerSpec("linear", out_features=2), [x])
    g.add("output", LayerSpec("output"), [x])
    assert g.validate()["fc"] == (3, 4, 2) and g.num_params() == 4 * 2 + 2


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "ceil", "expected"),
    [(227, 11, 4, False, 55), (55, 3, 2, True, 27), (13, 3, 2, True, 6), (24, 2, 2, True, 12)],
)
def test_pool_output_sizes_match_torch(size, kernel, stride, ceil, expected):
    import torch

    g = NetGraph()
    x = g.add("input", LayerSpec("input", shape=[1, size, size]))
    x = g.add("pool", LayerSpec("maxpool", kernel_size=kernel, stride=stride, ceil_mode=ceil), [x])
    g.add("output", LayerSpec("output"), [x])
    pool = torch.nn.MaxPool2d(kernel, stride, ceil_mode=ceil)
    real = pool(torch.zeros(1, 1, size, size)).shape[-1]
    assert g.shapes()["pool"] == (1, expected, expected) and real == expected


def test_bad_json_is_one_line(tmp_path):
    bad = tmp_path / "graph.json"
    bad.write_text("{not json")
    with pytest.raises(GraphError, match="not valid JSON"):
        NetGraph.from_json(bad)
    with pytest.raises(GraphError, match="does not exist"):
        NetGraph.from_json(tmp_path / "missing.json")
    other = json.dumps({"nodes": []})
    with pytest.raises(GraphError, match="not a grownet graph"):
        NetGraph.from_json(other)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (LayerSpec("dropin", mode="regularising"), r"'join' \(dropin\): mode must be"),
        (LayerSpec("dropin", length=0), r"'join' \(dropin\): length must be"),
        (LayerSpec("gated_add", drop_prob=1.5), r"'join' \(gated_add\): drop_prob must be"),
    ],
)
def test_bad_parameter_values_fail_validation_naming_the_node(spec, match):
    g = NetGraph()
    x = g.add("input", LayerSpec("input", shape=[2, 8, 8]))
    a = g.add("conv_a", LayerSpec("conv", out_channels=2, kernel_size=3, padding=1), [x])
    j = g.add("join", spec, [a, x])
    g.add("output", LayerSpec("output"), [j])
    with pytest.raises(GraphError, match=match):
        g.validate()


def test_unknown_init_fails_validation():
    g = NetGraph()
    x = g.add("input", LayerSpec("input", shape=[4]))
    x = g.add("fc", LayerSpec("linear", out_features=2, init="he"), [x])
    g.add("output", LayerSpec("output"), [x])
    with pytest.raises(GraphError, match=r"'fc' \(linear\): unknown init 'he'"):
        g.validate()


def _graph_with(**changes) -> dict:
    """small_cnn's JSON data with the first conv node's fields replaced."""
    data = small_cnn().to_dict()
    conv = next(n for n in data["nodes"] if n["id"] == "conv1")
    conv.update(changes)
    return data


def _conv_params(**params) -> dict:
    return _graph_with(params={"out_channels": 4, "kernel_size": 3, **params})


CONV = ": node 'conv1': op 'conv': "

# (file content, expected message after "<file>")
BAD_GRAPH_FILES = [
    (b"\x89PNG\r\n\x1a\n\x00\xff", r": not a text file \(byte 0 is not UTF-8\)"),
    (b"", ": the file is empty"),
    (b"  \n", ": the file is empty"),
    (b"{not json", " is not valid JSON: Expecting property name"),
    (b"[1, 2]", ": not a grownet graph"),
    ({"format": "grownet.netgraph", "version": 1}, ": 'nodes' must be a list, got None"),
    ({**_graph_with(), "edges": {}}, ": 'edges' must be a list"),
    ({**_graph_with(), "edges": [{"source": "input"}]}, r": edges\[0\] must be a mapping with"),
    (_graph_with(id=7), r": nodes\[1\]: 'id' 7 is not a valid node id"),
    (_graph_with(op="convolution"), ": node 'conv1': unknown layer op 'convolution'"),
    (_graph_with(op=["conv"]), r": node 'conv1': unknown layer op \['conv'\]"),
    (_graph_with(params=[4, 3]), ": node 'conv1': 'params' must be a mapping"),
    (_conv_params(out_channels="4"), CONV + "out_channels must be an integer >= 1, got '4'"),
    (_conv_params(out_channels=0), CONV + "out_channels must be an integer >= 1, got 0"),
    (_conv_params(out_channels=-4), CONV + "out_channels must be an integer >= 1, got -4"),
    (_conv_params(kernel_size=0), CONV + "kernel_size must be an integer >= 1 or a pair"),
    (_conv_params(kernel_size=[3, -1]), CONV + "kernel_size must be an integer >= 1 or a pair"),
    (_conv_params(padding=-1), CONV + "padding must be an integer >= 0"),
    (_conv_params(bias="yes"), CONV + "bias must be true or false, got 'yes'"),
    (_conv_params(out_channels=True), CONV + "out_channels must be an integer >= 1, got True"),
]


@pytest.mark.parametrize(("content", "problem"), BAD_GRAPH_FILES)
def test_bad_graph_file_is_one_line_naming_it(tmp_path, content, problem):
    path = tmp_path / "graph.json"
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    with pytest.raises(GraphError, match=f"^{path}{problem}") as info:
        NetGraph.from_json(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("op", "params", "match"),
    [
        ("linear", {"out_features": 0}, "out_features must be an integer >= 1"),
        ("maxpool", {"kernel_size": 2, "stride": 0}, "stride must be an integer >= 1"),
        ("channel_pad", {"channels": 2.5}, "channels must be an integer >= 1"),
        ("input", {"shape": [3, 0, 4]}, "shape must be a non-empty list of integers >= 1"),
        ("dropout", {"p": "half"}, "p must be a finite number"),
    ],
)
def test_bad_parameter_types_and_ranges_fail_at_the_spec(op, params, match):
    with pytest.raises(GraphError, match=f"op '{op}': {match}"):
        LayerSpec(op, **params)
