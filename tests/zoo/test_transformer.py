"""The zoo's transformers against PyTorch's own pre-norm encoder layer, and their options."""

import pytest
import torch
from torch import nn

from grownet.graph import GraphNet
from grownet.graph.plan import Planner, StepPlan
from grownet.search.residual import residual_units
from grownet.zoo import build, gpt, vit


def _reference_blocks(net: GraphNet, depth: int, width: int, heads: int, causal: bool):
    """``nn.TransformerEncoderLayer``s (pre-norm, GELU) holding the graph's block weights."""
    layers = []
    for i in range(1, depth + 1):
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        layer.self_attn.load_state_dict(net.layers[f"attn{i}"].state_dict())
        for ours, theirs in (("ln{}_1", "norm1"), ("ln{}_2", "norm2"), ("fc{}_1", "linear1"),
                             ("fc{}_2", "linear2")):
            getattr(layer, theirs).load_state_dict(net.layers[ours.format(i)].state_dict())
        layers.append(layer.eval())

    def run(x):
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1]) if causal else None
        for layer in layers:
            x = layer(x, src_mask=mask, is_causal=causal)
        return x

    return run


def test_gpt_computes_what_pytorch_encoder_layers_with_a_causal_mask_do():
    torch.manual_seed(0)
    net = GraphNet(gpt(depth=2, width=16, heads=2, in_shape=(6,), num_classes=11, bias=True)).eval()
    blocks = _reference_blocks(net, 2, 16, 2, causal=True)
    ids = torch.randint(0, 11, (3, 6))
    table = net.layers["tok"].weight
    x = blocks(table[ids] + net.layers["pos"].weight)
    want = net.layers["ln_f"](x) @ table.T
    torch.testing.assert_close(net(ids), want, rtol=1e-5, atol=1e-5)
    assert net(ids).shape == (3, 6, 11)


def test_vit_computes_what_pytorch_encoder_layers_do():
    torch.manual_seed(0)
    net = GraphNet(vit(patch=4, depth=2, width=16, heads=2, mlp_ratio=4, in_shape=(3, 8, 8))).eval()
    blocks = _reference_blocks(net, 2, 16, 2, causal=False)
    x = torch.randn(2, 3, 8, 8)
    tokens = net.layers["patches"](x).flatten(2).transpose(1, 2)
    tokens = torch.cat([net.layers["cls"].weight.expand(2, 1, 16), tokens], dim=1)
    out = blocks(tokens + net.layers["tokens"].weight)
    want = net.layers["head"](net.layers["ln_f"](out)[:, 0])
    torch.testing.assert_close(net(x), want, rtol=1e-5, atol=1e-5)


def test_gpt_defaults_are_the_baby_gpt_and_its_head_shares_the_embedding():
    g = build("gpt")
    net = GraphNet(g)
    assert net.layers["head"].weight is net.layers["tok"].weight
    # nanoGPT's baby GPT without biases: 4 x 12 x 128^2 block weights, norms, embeddings
    assert g.num_params() == 4 * (12 * 128 * 128 + 2 * 128) + 128 + 65 * 128 + 64 * 128
    assert sum(p.numel() for p in net.parameters()) == g.num_params()
    assert [n for n in g.topological_order() if g.op(n) == "add"] == [
        f"add{i}_{j}" for i in range(1, 5) for j in (1, 2)
    ]


def test_a_language_model_learns_a_repeating_sequence():
    """The trainer's loss over every position: a tiny GPT memorises a period-3 pattern."""
    from grownet.train.evaluation import prediction_loss

    torch.manual_seed(0)
    net = GraphNet(gpt(depth=1, width=16, heads=2, in_shape=(8,), num_classes=3))
    stream = torch.arange(40) % 3
    x = torch.stack([stream[i:i + 8] for i in range(20)])
    y = torch.stack([stream[i + 1:i + 9] for i in range(20)])
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        loss = prediction_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("gpt", {"heads": 3}, r"gpt: heads must divide width=128, got heads=3"),
        ("gpt", {"in_shape": (1, 28, 28)}, r"gpt: in_shape must be \(context,\)"),
        ("gpt", {"norm": "batch"}, r"gpt: norm must be one of 'layer', 'rms', got 'batch'"),
        ("gpt", {"mlp_ratio": 0}, r"gpt: mlp_ratio must be a number > 0"),
        ("vit", {"patch": 5}, r"vit: patch must divide the image's 28x28 pixels, got 5"),
        ("vit", {"depth": -1}, r"vit: depth must be an integer >= 0, got -1"),
        ("gpt", {"depth_dropout": 1.5}, r"gpt: depth_dropout must be .*got 1.5"),
        ("vit", {"stochastic_depth": "cubic"}, r"vit: stochastic_depth must be one of"),
        ("gpt", {"depth_dropout": 0.2, "stochastic_depth": "linear"}, r"not both"),
    ],
)
def test_bad_options_are_one_line_naming_them(name, options, message):
    with pytest.raises(ValueError, match=message):
        build(name, **options)


def test_rms_norm_and_no_blocks_build():
    g = gpt(depth=0, width=8, heads=2, in_shape=(4,), num_classes=5, norm="rms", tie=False)
    assert [g.op(n) for n in g.topological_order()] == [
        "input", "embedding", "param", "rms_norm", "linear", "output"
    ]
    assert GraphNet(g)(torch.zeros(1, 4, dtype=torch.long)).shape == (1, 4, 5)


@pytest.mark.parametrize(
    ("options", "kind", "probs"),
    [
        ({"stochastic_depth": "linear"}, "stochastic_depth", [0.125, 0.25, 0.375, 0.5]),
        ({"stochastic_depth": "uniform", "p_last": 0.8}, "stochastic_depth", [0.2] * 4),
        ({"depth_dropout": 0.3}, "depth_dropout", [0.3] * 4),
    ],
)
def test_residual_units_drop_as_in_the_resnets(options, kind, probs):
    g = gpt(depth=2, width=16, heads=2, in_shape=(8,), num_classes=11, **options)
    adds = ["add1_1", "add1_2", "add2_1", "add2_2"]  # the names growth and sweeps address
    assert g.nodes_of("gated_add") == adds and not g.nodes_of("add")
    assert [g.spec(n).params["kind"] for n in adds] == [kind] * 4
    assert [g.spec(n).params["drop_prob"] for n in adds] == pytest.approx(probs)
    assert [g.inputs(n)[0] for n in adds] == ["attn1", "fc1_2", "attn2", "fc2_2"]  # branch
    plain = gpt(depth=2, width=16, heads=2, in_shape=(8,), num_classes=11)
    assert g.num_params() == plain.num_params()
    net = GraphNet(g).train()
    assert net(torch.zeros(3, 8, dtype=torch.long)).shape == (3, 8, 11)
    assert residual_units(g) == adds


def test_a_dropped_unit_is_skipped_for_real():
    """The units a step's plan drops do not run; the others do."""
    g = vit(depth=2, width=16, heads=2, in_shape=(1, 8, 8), stochastic_depth="linear")
    net = GraphNet(g).train()
    ran = set()
    for node in ("attn1", "fc1_1", "attn2", "fc2_1"):
        net.layers[node].register_forward_hook(lambda m, *_, n=node: ran.add(n))
    gates = {"add1_1": True, "add1_2": False, "add2_1": False, "add2_2": True}
    assert net(torch.zeros(2, 1, 8, 8), StepPlan(gates=gates)).shape == (2, 10)
    assert ran == {"attn1", "fc2_1"}
    draws = [Planner(g, seed=0).draw(i).gates for i in range(400)]
    dropped = [sum(not d[n] for d in draws) / 400 for n in ("add1_1", "add2_2")]
    assert dropped[0] < 0.25 < dropped[1]  # linear decay: 1/8 and 1/2 of steps
