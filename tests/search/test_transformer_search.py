"""A growth search on a language model: whole transformer blocks grown after a residual add,
their weights started fresh, at zero or as copies, and decisions on per-sequence shares of
tokens right (paired t-test where a classifier's samples take McNemar)."""

import json
import random

import numpy as np
import pytest

from grownet.graph import NetGraph
from grownet.search import runner
from grownet.search.knee import find_knee, paired_p
from grownet.search.spec import SpecError, load_spec

SPEC = """
name = "lm"
dataset = "text:{text}?context=16"
[base]
model = "gpt"
options = {{ depth = 1, width = 16, heads = 2 }}
[train]
batch_size = 8
optimizer = "adamw"
base_lr = 3e-3
test_interval = 20
display_interval = 20
threads = 1
quiet = true
[growth]
insert_after = ["add1_2"]
units = 2
block_start = "{start}"
stage_iters = 20
dropin_length = 10
max_stages = 1
min_gain = -1.0
baseline = false
[depth]
ratios = [0.5, 0.25]
iters_per_ratio = 5
[width]
enabled = false
[verify]
iters = 5
[final]
starts = ["inherited"]
iters = 5
"""


def write_spec(tmp_path, start):
    random.seed(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "ran", "off"]
    (tmp_path / "t.txt").write_text(" ".join(random.choice(words) for _ in range(1500)))
    path = tmp_path / "lm.toml"
    path.write_text(SPEC.format(text=tmp_path / "t.txt", start=start))
    return load_spec(path, runs_dir=str(tmp_path / "runs"))


def test_a_gpt_grows_a_whole_block_copied_from_the_last(tmp_path):
    runner.Search(write_spec(tmp_path, "copy"), echo=lambda s: None, quiet=True).run()
    stages = [json.loads(line) for line in (tmp_path / "runs/lm/stages.jsonl").open()]
    (block,) = stages[1]["growth"]["blocks"]
    assert block["template"][0] == "ln1_1" and block["template"][-1] == "add1_2"
    assert block["layers"] == [f"{n}_g1b0" for n in block["template"]]
    assert block["dropin"] == "add1_2_g1b0_dropin"
    summary = json.loads((tmp_path / "runs/lm/search_summary.json").read_text())
    widths = summary["recommended"]["widths"]  # features, not the 16 positions
    graph = NetGraph.from_json(tmp_path / "runs/lm/graph.json")
    layers = graph.nodes_of("linear", "embedding")  # the token table's: the residual width
    assert widths == {n: graph.spec(n).params["out_features"] for n in layers}
    assert widths["head"] == len(set((tmp_path / "t.txt").read_text()))


def test_a_bad_block_start_is_one_line(tmp_path):
    with pytest.raises(SpecError, match=r"block_start must be one of .*got 'twice'"):
        write_spec(tmp_path, "twice")


def test_shares_of_tokens_right_take_a_paired_t_test():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0.5, 0.7, 200)
    same, worse = ref + rng.normal(0, 0.01, 200), ref - 0.05 + rng.normal(0, 0.01, 200)
    p_same, p_worse = paired_p(np.stack([same, worse]), ref, 0.0)
    assert p_same > 0.05 and p_worse < 1e-6
    # a rise within max_rise is not off the plateau
    assert paired_p(np.stack([worse]), ref, 0.1)[0] > 0.5
    errors = [1 - same.mean(), 1 - worse.mean()]
    knee = find_knee([0.9, 0.5], errors, n_test=200, plateau=1 - ref.mean(),
                     correct=[same, worse], plateau_correct=ref)  # fmt: skip
    assert (knee.kind, knee.ratio, knee.test) == ("knee", 0.9, "paired t")
    assert "paired t, Holm" in knee.describe()


@pytest.mark.parametrize("start", ["fresh", "zero", "copy"])
def test_a_grown_blocks_weights_start_as_asked(start):
    import torch

    from grownet.graph import GraphNet
    from grownet.search.grow import Growth, block_starts, grow_stage
    from grownet.zoo import gpt

    base = gpt(depth=1, width=16, heads=2, in_shape=(8,), num_classes=5)
    state = GraphNet(base).state_dict()
    graph, growth = grow_stage(base, Growth.start(["add1_2"]), stage=1, mode="append",
                               dropin_length=5, stagger=0, stage_iters=10, units=2)  # fmt: skip
    started = block_starts(graph, growth, 1, state, start)
    new = {k: v for k, v in started.items() if "_g1b0." in k}
    if start == "fresh":
        assert not new
    elif start == "zero":
        assert sorted(new) == ["layers.attn1_g1b0.out_proj.weight", "layers.fc1_2_g1b0.weight"]
        assert all(not v.any() for v in new.values())
    else:
        assert len(new) == sum(k.split(".")[1] in growth.blocks[0]["template"] for k in state)
        for key, value in new.items():
            torch.testing.assert_close(value, state[key.replace("_g1b0.", ".")])


def test_a_runs_correctness_keeps_shares_and_bools_as_they_are():
    import torch

    from grownet.search.runs import as_correct

    assert as_correct(torch.tensor([0.25, 1.0])) == (0.25, 1.0)  # never rounded to True
    assert as_correct(torch.tensor([True, False])) == (True, False)


def test_a_block_that_cannot_grow_is_refused_before_anything_trains(tmp_path):
    write_spec(tmp_path, "fresh")
    path = tmp_path / "lm.toml"
    path.write_text(path.read_text().replace("units = 2", "units = 3"))
    spec = load_spec(path, runs_dir=str(tmp_path / "runs"))
    with pytest.raises(SpecError, match=r"insert_after: 'add1_2' ends fewer than 3 residual"):
        runner.Search(spec, echo=lambda s: None, quiet=True).run()
    assert not (tmp_path / "runs" / "lm").exists()



@pytest.mark.parametrize("init", ["random", "net2net"])
def test_a_gpts_heads_and_mlp_units_grow_keeping_its_function(init):
    import torch

    from grownet.graph import GraphNet
    from grownet.search.spec import GrowthSpec
    from grownet.search.widen_stage import planned_widths, widen_stage
    from grownet.zoo import gpt

    base = gpt(depth=2, width=16, heads=2, in_shape=(8,), num_classes=11)
    net = GraphNet(base).eval()
    growth = GrowthSpec(kind="width", width_init=init, dropin_length=10, stage_iters=20)
    # heads, the MLPs' hidden units and the residual stream (the token table, every block's
    # output projections and norms, the tied head: one group, named by its table)
    assert [(p["layer"], p["from"], p["to"]) for p in planned_widths(base, growth)] == [
        ("tok", 16, 32), ("attn1", 2, 4), ("fc1_1", 64, 128), ("attn2", 2, 4),
        ("fc2_1", 64, 128)]  # fmt: skip
    graph, state, plans = widen_stage(base, net.state_dict(), growth, stage=1, seed=0)
    wide = GraphNet(graph)
    wide.load_state_dict(state)
    x = torch.randint(0, 11, (3, 8))
    assert torch.allclose(wide.eval()(x), net(x), atol=1e-5)
    assert graph.spec("fc1_1").params["out_features"] == 128
    assert graph.spec("attn2").params["heads"] == 4
    assert graph.spec("tok").params["out_features"] == 32
    assert wide.layers["head"].weight is wide.layers["tok"].weight  # still tied
    # a head tied to the table cannot halve a split unit's columns: that group grows randomly
    assert plans[0].get("init", init) == "random"


def with_width(spec_path, mode="fine_tune", layers=()):
    text = spec_path.read_text()
    depth = "[depth]\nratios = [0.5, 0.25]\niters_per_ratio = 5"
    text = text.replace(depth, "[depth]\nenabled = false")
    chosen = f"\nlayers = {list(layers)!r}".replace("'", '"') if layers else ""
    text = text.replace("[width]\nenabled = false",
                        f'[width]\nratios = [0.75, 0.25]\niters_per_ratio = 5\nmode = "{mode}"'
                        + chosen)  # fmt: skip
    spec_path.write_text(text)
    return load_spec(spec_path, runs_dir=str(spec_path.parent / "runs"))


def test_a_gpts_width_sweep_covers_heads_mlp_units_and_the_residual_stream(tmp_path):
    write_spec(tmp_path, "fresh")
    runner.Search(with_width(tmp_path / "lm.toml"), echo=lambda s: None, quiet=True).run()
    (sweep,) = json.loads((tmp_path / "runs/lm/sweeps.json").read_text())["sweeps"]
    # the residual stream: one unit, named by its token table, its grown block's projection in
    assert sweep["units"] == [["tok", "fc1_2", "fc1_2_g1b0"], ["attn1"], ["fc1_1"],
                              ["attn1_g1b0"], ["fc1_1_g1b0"]]  # fmt: skip
    assert [p["ratio"] for p in sweep["points"]] == [0.75, 0.25]


def test_a_gpts_width_sweep_thins_heads_and_mlp_units(tmp_path):
    write_spec(tmp_path, "fresh")
    spec = with_width(tmp_path / "lm.toml", layers=["attn1", "fc1_1"])
    summary = runner.Search(spec, echo=lambda s: None, quiet=True).run()
    (sweep,) = json.loads((tmp_path / "runs/lm/sweeps.json").read_text())["sweeps"]
    assert sweep["units"] == [["attn1"], ["fc1_1"]]
    graph = NetGraph.from_json(tmp_path / "runs/lm/graph.json")
    heads = summary["recommended"]["heads"]
    assert heads == {n: graph.spec(n).params["heads"] for n in ("attn1", "attn1_g1b0")}
    assert set(heads.values()) <= {1, 2}
    checked = sweep["estimate"]["channels"]  # heads of a checked ratio: its kept share of 2
    assert checked["attn1"] == -(-2 * sweep["estimate"]["ratio"] // 1)
    assert "; heads attn1=" in (tmp_path / "runs/lm/summary.txt").read_text()


def test_a_one_shot_sweep_of_heads_is_one_line(tmp_path):
    write_spec(tmp_path, "fresh")
    spec = with_width(tmp_path / "lm.toml", mode="one_shot")
    with pytest.raises(SpecError, match=r'mode = "one_shot" cannot sweep the heads of attn1'):
        runner.Search(spec, echo=lambda s: None, quiet=True).run()

