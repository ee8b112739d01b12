"""Surgery keeps what was learned: untouched parts, reused modules, weights and optimizer state."""

import doctest
import json

import pytest
import torch

from grownet.graph import GraphError, LayerSpec, NetGraph
from grownet.graph import surgery as surgery_module
from grownet.graph import weights as weights_module
from grownet.graph.executor import GraphNet, exclusive_branches, sync_optimizer
from grownet.graph.plan import StepPlan
from grownet.graph.surgery import (
    collapse_dropin,
    exclusive_nodes,
    fresh_nodes,
    insert_after,
    narrow,
    remove_layer,
    remove_residual_unit,
    set_params,
    widen,
)

S = LayerSpec
X = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def conv(c: int, k: int = 3, **kw) -> LayerSpec:
    return S("conv", out_channels=c, kernel_size=k, padding=k // 2, **kw)


def chain_graph(*, lrn: bool = False) -> NetGraph:
    """input, c1, bn1, r1, [lrn,] c2, bn2, r2, pool, drop, flat, fc, output: a chain."""
    g = NetGraph()
    x = g.add("input", S("input", shape=[3, 8, 8]))
    x = g.chain(x, [("c1", conv(6)), ("bn1", S("batchnorm")), ("r1", S("relu"))])
    if lrn:
        x = g.add("lrn", S("lrn", size=3), [x])
    x = g.chain(x, [("c2", conv(5)), ("bn2", S("batchnorm")), ("r2", S("relu"))])
    x = g.chain(x, [("pool", S("maxpool", kernel_size=2)), ("drop", S("dropout"))])
    x = g.chain(x, [("flat", S("flatten")), ("fc", S("linear", out_features=4))])
    g.add("output", S("output"), [x])
    return g


def residual_graph() -> NetGraph:
    """A gated identity unit (u1) and a plain add with a 1x1 stride-2 projection (u2)."""
    g = NetGraph()
    x = g.add("input", S("input", shape=[3, 8, 8]))
    x = g.chain(x, [("stem", conv(4)), ("r0", S("relu"))])
    b = g.chain(x, [("u1_conv", conv(4)), ("u1_bn", S("batchnorm"))])
    a = g.add("u1_add", S("gated_add", drop_prob=0.5), [b, x])
    x = g.add("r1", S("relu"), [a])
    b = g.chain(x, [("u2_conv", conv(8, stride=2)), ("u2_bn", S("batchnorm"))])
    s = g.add("u2_proj", conv(8, k=1, stride=2), [x])
    x = g.add("u2_add", S("add"), [b, s])
    x = g.chain(x, [("gap", S("global_avgpool")), ("fc", S("linear", out_features=3))])
    g.add("output", S("output"), [x])
    return g


def trained(graph: NetGraph) -> GraphNet:
    """An eval-mode net whose batchnorms hold non-trivial statistics."""
    torch.manual_seed(0)
    net = GraphNet(graph)
    with torch.no_grad():
        for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
        for _ in range(3):
            net(X)  # train mode: running statistics move
    return net.eval()


NEW6 = [("c1b", conv(6)), ("bn1b", S("batchnorm")), ("r1b", S("relu"))]


# --------------------------------------------------------------------------- insert_after


@pytest.mark.parametrize("node", ["input", "r1", "bn2", "drop"])
def test_gradual_dropin_at_q1_changes_nothing(node):
    net = trained(chain_graph())
    shape = net.shapes[node]
    layers = [("new", S("identity"))] if len(shape) == 1 else [("new", conv(shape[0]))]
    grown = net.rebuilt(insert_after(net.graph, node, layers))
    assert torch.equal(grown(X), net(X))  # eval, iteration 0: q = 1, the new layer is not in
    assert all(grown.layers[n] is net.layers[n] for n in net.graph.nodes)
    assert "new" in grown.train().skipped_nodes(StepPlan())  # ... and costs nothing


def test_dropin_grown_mid_training_starts_at_its_own_step():
    net = trained(chain_graph())
    dropin = S("dropin", length=100, start=5000)
    grown = net.rebuilt(insert_after(net.graph, "r1", NEW6, dropin=dropin, dropin_id="d"))
    assert torch.equal(grown(X, StepPlan(iteration=5000)), net(X))
    assert not torch.equal(grown(X, StepPlan(iteration=5050)), net(X))


def test_plain_insertion_of_shape_keeping_layers():
    net = trained(chain_graph())
    g = insert_after(net.graph, "r1", [("id", S("identity")), ("r", S("relu"))], join="plain")
    assert g.inputs("c2") == ["r"] and "dropin" not in {g.op(n) for n in g.nodes}
    assert torch.equal(net.rebuilt(g)(X), net(X))
    assert fresh_nodes(net.graph, g) == ["id", "r"]


@pytest.mark.parametrize(
    ("node", "layers", "method", "resized"),
    [
        ("r1", [("c", conv(8))], "crop", [8, 8, 8]),
        ("r1", [("c", conv(3))], "interpolate", [3, 8, 8]),
        ("r1", [("c", conv(6, stride=2))], "crop", [6, 4, 4]),
        ("r2", [("p", S("maxpool", kernel_size=2)), ("c", conv(7))], "interpolate", [7, 4, 4]),
    ],
)
def test_resize_is_inserted_on_the_old_path(node, layers, method, resized):
    net = trained(chain_graph())
    g = insert_after(net.graph, node, layers, resize_method=method, dropin_id="d")
    assert g.inputs("d") == [layers[-1][0], "d_resize"]
    assert g.inputs("d_resize") == [node]
    assert g.spec("d_resize") == S("resize", shape=resized, method=method)
    assert list(g.validate()["d"]) == resized
    out = net.rebuilt(g)(X)  # the consumers see the new shape and are rebuilt
    assert out.shape == (6, 4) and torch.isfinite(out).all()


def test_default_ids_do_not_collide():
    g = chain_graph()
    g = insert_after(g, "r1", [("x_dropin", S("relu"))], join="plain")
    g = insert_after(g, "x_dropin", [("x", conv(6))])
    assert g.op("x_dropin_2") == "dropin"


@pytest.mark.parametrize(
    ("node", "layers", "options", "match"),
    [
        ("nope", NEW6, {}, "'nope'"),
        ("output", NEW6, {}, "'output'.*'fc'"),
        ("r1", [("c2", conv(6))], {}, "'c2' already exists"),
        ("r1", [("a", conv(6)), ("a", S("relu"))], {}, "'a' already exists"),
        ("r1", NEW6, {"dropin_id": "bn2"}, "'bn2' already exists"),
        ("r1", [], {}, "'r1'.*at least one"),
        ("r1", [("a", S("add"))], {}, "'a'"),
        ("r1", NEW6, {"join": "glue"}, "'r1'.*join"),
        ("r1", NEW6, {"resize_method": "warp"}, "'r1'.*resize_method"),
        ("r1", NEW6, {"dropin": S("relu")}, "'r1'.*dropin"),
        ("r1", NEW6, {"dropin": S("dropin", length=0)}, "'r1'.*length"),
        ("r1", [("f", S("flatten"))], {}, "'r1'.*'f'.*rank"),
    ],
)
def test_insert_after_errors_name_the_node(node, layers, options, match):
    graph = chain_graph()
    before = graph.to_json()
    with pytest.raises(GraphError, match=match):
        insert_after(graph, node, layers, **options)
    assert graph.to_json() == before


def test_insert_after_refuses_a_shape_an_add_cannot_take():
    with pytest.raises(GraphError, match=r"insert_after 'r0'.*'u1_add'.*\(8, 8, 8\)"):
        insert_after(residual_graph(), "r0", [("wide", conv(8))], join="plain")


# --------------------------------------------------------------------------- collapse_dropin


@pytest.mark.parametrize("layers", [NEW6, [("c", conv(8))]])
def test_collapse_dropin_gives_the_finished_dropin(layers):
    net = trained(chain_graph())
    grown = net.rebuilt(insert_after(net.graph, "r1", layers, dropin_id="d"))
    new = collapse_dropin(grown.graph, "d", iteration=1000)
    assert "d" not in new and "d_resize" not in new and new.inputs("c2") == [layers[-1][0]]
    done = grown.rebuilt(new)
    assert torch.equal(done(X), grown(X, StepPlan(dropin_q={"d": 0.0})))
    old = grown.rebuilt(collapse_dropin(grown.graph, "d", keep="old", iteration=0))
    assert torch.equal(old(X), grown(X, StepPlan(dropin_q={"d": 1.0})))
    assert all(n not in old.graph for n, _ in layers)


@pytest.mark.parametrize(
    ("node", "options", "match"),
    [
        ("c2", {}, "'c2' is a conv"),
        ("d", {"keep": "both"}, "'d'.*keep"),
        ("d", {"iteration": 999}, "'d'.*iteration 999.*1000"),
        ("d", {"keep": "old", "iteration": 1}, "'d'.*iteration 1"),
    ],
)
def test_collapse_dropin_errors(node, options, match):
    g = insert_after(chain_graph(), "r1", NEW6, dropin_id="d")
    with pytest.raises(GraphError, match=match):
        collapse_dropin(g, node, **options)


# --------------------------------------------------------------------------- remove


@pytest.mark.parametrize("node", ["r1", "drop", "r2"])
def test_remove_layer_keeps_everything_else(node):
    net = trained(chain_graph())
    (source,) = net.graph.inputs(node)
    g = remove_layer(net.graph, node)
    assert node not in g and set(g.consumers(source)) == set(net.graph.consumers(node))
    assert fresh_nodes(net.graph, g) == []
    if node == "drop":  # dropout is the identity in eval
        assert torch.equal(net.rebuilt(g)(X), net(X))


@pytest.mark.parametrize(
    ("graph", "node", "match"),
    [
        (chain_graph, "input", "'input'.*input node"),
        (chain_graph, "output", "'output'.*output node"),
        (chain_graph, "c2", r"'c2'.*'bn2' read \(5, 8, 8\).*\(6, 8, 8\) from 'r1'"),
        (chain_graph, "pool", "'pool'"),
        (residual_graph, "u1_add", "'u1_add'.*2 inputs"),
        (lambda: remove_layer(residual_graph(), "u1_conv"), "u1_bn", "'r0' already feeds 'u1_add'"),
    ],
)
def test_remove_layer_errors(graph, node, match):
    with pytest.raises(GraphError, match=match):
        remove_layer(graph(), node)


def test_remove_gated_unit_drops_exactly_its_branch():
    net = trained(residual_graph())
    g = remove_residual_unit(net.graph, "u1_add")
    branch = exclusive_branches(net.graph)[("u1_bn", "u1_add")]
    assert branch == exclusive_nodes(net.graph, "u1_bn", "u1_add") == {"u1_conv", "u1_bn"}
    assert set(net.graph.nodes) - set(g.nodes) == {"u1_conv", "u1_bn", "u1_add"}
    assert g.inputs("r1") == ["r0"] and g.validate()["r1"] == (4, 8, 8)
    new = net.rebuilt(g)
    assert all(new.layers[n] is net.layers[n] for n in g.nodes)
    assert new(X).shape == (6, 3)


def test_remove_projection_unit_keeps_the_shortcut():
    g = remove_residual_unit(residual_graph(), "u2_add", branch=0)
    assert {"u2_conv", "u2_bn", "u2_add"}.isdisjoint(g.nodes)
    assert g.inputs("gap") == ["u2_proj"] and g.shapes()["gap"] == (8,)


def test_remove_unit_bypasses_an_identity_shortcut():
    g = insert_after(residual_graph(), "r0", [("skip", S("identity"))], join="plain")
    g.nx.remove_edge("skip", "u1_conv")  # the branch reads r0, the shortcut reads skip
    g.nx.add_edge("r0", "u1_conv", port=0)
    g = remove_residual_unit(g, "u1_add")
    assert "skip" not in g and g.inputs("r1") == ["r0"]


@pytest.mark.parametrize(
    ("node", "options", "match"),
    [
        ("u2_add", {}, "'u2_add'.*branch=0 or branch=1"),
        ("u1_add", {"branch": 1}, "'u1_add'.*branch must be 0"),
        ("u2_add", {"branch": 2}, "'u2_add'.*branch must be 0 or 1"),
        ("r1", {}, "'r1'.*not a residual unit"),
        ("ghost", {}, "'ghost'.*not in the graph"),
    ],
)
def test_remove_residual_unit_errors(node, options, match):
    with pytest.raises(GraphError, match=match):
        remove_residual_unit(residual_graph(), node, **options)


def test_remove_units_from_the_zoo_resnet():
    zoo = pytest.importorskip("grownet.zoo")
    graph = zoo.build("cifar_resnet", depth=20)
    net = GraphNet(graph).eval()
    units = graph.nodes_of("gated_add")
    assert len(units) == 9
    smaller = graph
    for add in units[1:]:
        smaller = remove_residual_unit(smaller, add)
    assert smaller.nodes_of("gated_add") == units[:1]
    assert smaller.validate()[smaller.output_node] == (10,)
    thin = net.rebuilt(smaller)
    assert all(thin.layers[n] is net.layers[n] for n in smaller.nodes)
    assert thin(torch.randn(2, 3, 32, 32)).shape == (2, 10)


# --------------------------------------------------------------------------- set_params


@pytest.mark.parametrize(
    ("node", "params"),
    [
        ("u1_add", {"drop_prob": 0.25}),
        ("u1_add", {"kind": "stochastic_depth"}),
        ("fc", {"bias": False}),
    ],
)
def test_set_params(node, params):
    graph = residual_graph()
    g = set_params(graph, node, **params)
    assert g.spec(node).params == {**graph.spec(node).params, **params}
    assert [n for n in g.nodes if g.spec(n) != graph.spec(n)] == [node]


@pytest.mark.parametrize(
    ("node", "params", "match"),
    [
        ("u1_add", {"drop_prob": 1.5}, "'u1_add'.*drop_prob"),
        ("u1_add", {"q": 0.5}, "'u1_add'.*'q'"),
        ("stem", {"out_channels": 5}, "'stem'.*'u1_add'"),
        ("stem", {}, "'stem'.*at least one"),
    ],
)
def test_set_params_errors(node, params, match):
    with pytest.raises(GraphError, match=match):
        set_params(residual_graph(), node, **params)


def test_set_params_width_dropout_retain():
    g = insert_after(chain_graph(), "r1", [("wd", S("width_dropout", mode="prefix"))], join="plain")
    assert set_params(g, "wd", retain=0.5).spec("wd").params["retain"] == 0.5
    with pytest.raises(GraphError, match=r"'wd'.*retain"):
        set_params(g, "wd", retain=0.0)


# --------------------------------------------------------------------------- narrow / widen


@pytest.mark.parametrize("keep", [4, [5, 0, 2], torch.tensor([1, 3])])
def test_narrow_keeps_the_kept_weights(keep):
    net = trained(chain_graph())
    idx = torch.arange(keep) if isinstance(keep, int) else torch.as_tensor(keep)
    thin = narrow(net, "c1", keep)
    old, new = net.layers, thin.layers
    assert thin.graph.spec("c1").params["out_channels"] == len(idx)
    assert torch.equal(new["c1"].weight, old["c1"].weight[idx])
    assert torch.equal(new["c1"].bias, old["c1"].bias[idx])
    for name in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(getattr(new["bn1"], name), getattr(old["bn1"], name)[idx])
    assert torch.equal(new["c2"].weight, old["c2"].weight[:, idx])
    assert all(new[n] is old[n] for n in ("bn2", "fc"))


def test_narrow_through_flatten_slices_feature_blocks():
    net = trained(chain_graph())
    keep = [4, 1]
    with torch.no_grad():  # make the dropped channels contribute nothing: narrowing is exact
        net.layers["fc"].weight.view(4, 5, 16)[:, [0, 2, 3]] = 0.0
    thin = narrow(net, "c2", keep)
    blocks = net.layers["fc"].weight.detach().view(4, 5, 16)
    assert torch.equal(thin.layers["fc"].weight, blocks[:, keep].reshape(4, 32))
    # a shorter dot product sums in another order: equal up to float rounding
    torch.testing.assert_close(thin(X), net(X), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("graph", "node", "out"),
    [
        (chain_graph, "c1", 11),
        (chain_graph, "c2", 9),
        (lambda: remove_residual_unit(residual_graph(), "u2_add", branch=1), "u2_conv", 10),
    ],
)
def test_widen_preserves_the_function(graph, node, out):
    net = trained(graph())  # the last: u2_conv -> u2_bn -> gap -> fc
    wide = widen(net, node, out, generator=torch.Generator().manual_seed(3))
    assert wide.graph.spec(node).params["out_channels"] == out
    assert wide.shapes[node][0] == out
    torch.testing.assert_close(wide(X), net(X), atol=1e-5, rtol=0)
    noisy = widen(net, node, out, noise=0.1, generator=torch.Generator().manual_seed(3))
    assert not torch.equal(noisy(X), net(X))


def test_widen_a_linear_layer():
    g = chain_graph()
    g = insert_after(
        g, "fc", [("r", S("relu")), ("fc2", S("linear", out_features=2))], join="plain"
    )
    net = trained(g)
    wide = widen(net, "fc", 7, generator=torch.Generator().manual_seed(0))
    assert wide.layers["fc2"].weight.shape == (2, 7)
    torch.testing.assert_close(wide(X), net(X), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("graph", "call", "match"),
    [
        (chain_graph, lambda n: narrow(n, "fc", 2), "'fc'.*output"),
        (chain_graph, lambda n: narrow(n, "bn1", 2), "'bn1' is a batchnorm"),
        (chain_graph, lambda n: narrow(n, "c1", 0), r"'c1'.*1\.\.6"),
        (chain_graph, lambda n: narrow(n, "c1", [1, 1]), "'c1'.*distinct"),
        (chain_graph, lambda n: narrow(n, "c1", [6]), "'c1'.*0..5"),
        (chain_graph, lambda n: narrow(n, "c1", True), "'c1'.*keep"),
        (chain_graph, lambda n: widen(n, "c1", 3), "'c1'.*narrow"),
        (chain_graph, lambda n: widen(n, "c1", 8, noise=-1.0), "'c1'.*noise"),
        (residual_graph, lambda n: narrow(n, "stem", 2), "'stem'.*'u1_add'.*other input"),
        (residual_graph, lambda n: widen(n, "u2_conv", 9), "'u2_conv'.*'u2_add'.*'u2_proj'"),
        (lambda: chain_graph(lrn=True), lambda n: widen(n, "c1", 9), "'c1'.*'lrn'.*across"),
        (
            lambda: set_params(chain_graph(), "c2", groups=3, out_channels=6),
            lambda n: narrow(n, "c1", 3),
            "'c1'.*grouped conv 'c2'",
        ),
    ],
)
def test_width_errors_name_the_node(graph, call, match):
    with pytest.raises(GraphError, match=match):
        call(GraphNet(graph()))


def test_narrow_across_lrn_is_allowed():
    net = trained(chain_graph(lrn=True))
    assert narrow(net, "c1", 3)(X).shape == (6, 4)


# --------------------------------------------------------------------------- no mutation


def graph_surgeries():
    return [
        lambda g: insert_after(g, "r1", [("c", conv(8))]),
        lambda g: insert_after(g, "r1", NEW6, join="plain"),
        lambda g: remove_layer(g, "r2"),
        lambda g: collapse_dropin(insert_after(g, "r1", NEW6, dropin_id="d"), "d"),
        lambda g: set_params(g, "drop", p=0.1),
    ]


@pytest.mark.parametrize("surgery", graph_surgeries())
def test_graph_surgery_never_mutates_its_input(surgery):
    graph = chain_graph()
    before = json.loads(graph.to_json())
    assert surgery(graph) != graph
    assert json.loads(graph.to_json()) == before


@pytest.mark.parametrize(
    "surgery",
    [
        lambda n: narrow(n, "c2", [0, 2]),
        lambda n: widen(n, "c1", 9, noise=0.5, generator=torch.Generator().manual_seed(0)),
        lambda n: n.rebuilt(remove_layer(n.graph, "r1")),
    ],
)
def test_net_surgery_never_mutates_its_input(surgery):
    net = trained(chain_graph())
    graph, state, out = net.graph.to_json(), net.state_dict(), net(X)
    state = {k: v.clone() for k, v in state.items()}
    surgery(net)
    assert net.graph.to_json() == graph and torch.equal(net(X), out)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())


# --------------------------------------------------------------------------- optimizer


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, weight_decay=1e-4),
        lambda ps: torch.optim.Adam(ps, lr=1e-3),
    ],
)
@pytest.mark.parametrize(
    ("surgery", "changed"),
    [
        (lambda n: n.rebuilt(insert_after(n.graph, "r1", NEW6)), set()),
        (lambda n: n.rebuilt(remove_layer(n.graph, "r2")), set()),
        (lambda n: narrow(n, "c1", 4), {"c1", "bn1", "c2"}),
        (
            lambda n: widen(n, "c2", 7, generator=torch.Generator().manual_seed(0)),
            {"c2", "bn2", "fc"},
        ),
    ],
)
def test_optimizer_state_survives_for_unchanged_params(make, surgery, changed):
    net = trained(chain_graph()).train()
    opt = make(net.parameters())
    for _ in range(2):
        opt.zero_grad()
        net(X).square().mean().backward()
        opt.step()
    new = surgery(net)
    new_opt = sync_optimizer(opt, new)
    kept = [n for n in new.graph.nodes if n in net.graph and n not in changed]
    for node in kept:
        for p in new.layers[node].parameters():
            assert new_opt.state[p] is opt.state[p] and len(opt.state[p]) > 0
    for node in changed:
        assert all(p not in new_opt.state for p in new.layers[node].parameters())
    new_opt.zero_grad()
    new(X).square().mean().backward()
    new_opt.step()  # fresh and kept states step together


# --------------------------------------------------------------------------- docs


@pytest.mark.parametrize("module", [surgery_module, weights_module])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
