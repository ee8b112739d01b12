"""Benchmarks are not tests: these check what the benchmarks compute, never how fast."""

import json

import pytest
import torch

from grownet.bench import depth, executor_overhead
from grownet.cli import main
from grownet.graph.executor import GraphNet
from grownet.graph.plan import StepPlan
from grownet.zoo import build


@pytest.mark.parametrize(("p", "paper"), [(0.25, 0.123), (0.5, 0.346), (0.75, 0.567)])
def test_paper_formula_on_resnet56_gives_the_papers_theory(p, paper):
    units = depth.residual_units(build("resnet56", shortcut="conv1x1", depth_dropout=p))
    assert len(units) == 27 and sum(u.drop_prob > 0 for u in units) == 24
    # Units differ a little in MACs (the strided ones), which the paper's 27-tau count ignores.
    assert depth.theoretical_saving(units, shortcut_share=1 / 9) == pytest.approx(paper, abs=0.012)
    # From the graph's own MACs a 1x1 shortcut is 1/18 of a branch, so more is saved.
    assert depth.theoretical_saving(units) > paper + 0.04


def test_units_measure_branch_and_shortcut():
    units = depth.residual_units(build("resnet20", shortcut="conv1x1"))
    first = units[0]
    assert first.branch_macs == 2 * 16 * 16 * 9 * 32 * 32
    assert first.shortcut_macs == 16 * 16 * 32 * 32


def test_skipped_branches_store_no_activations():
    torch.manual_seed(0)
    graph = build("resnet20", shortcut="conv1x1", depth_dropout=0.5)
    net = GraphNet(graph)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    gates = graph.nodes_of("gated_add")
    droppable = [n for n in gates if graph.spec(n).params["drop_prob"] > 0]
    all_open = depth.saved_activation_bytes(net, x, y, StepPlan(), torch.device("cpu"))
    half = {n: i % 2 == 0 for i, n in enumerate(droppable)}
    fewer = depth.saved_activation_bytes(net, x, y, StepPlan(gates=half), torch.device("cpu"))
    assert fewer < 0.9 * all_open  # 3 of 9 branches skipped; shortcuts and stem still store


def test_mask_mode_computes_the_same_function_as_skip():
    torch.manual_seed(0)
    skip = GraphNet(build("resnet20", depth_dropout=0.5))
    mask = GraphNet(build("resnet20", depth_dropout=0.5, mode="mask"))
    mask.load_state_dict(skip.state_dict())
    plan = StepPlan(gates={"layer1_1_add": False, "layer3_2_add": False})
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(skip(x, plan), mask(x, plan))


def test_depth_dropout_run_and_cli_write_the_table(tmp_path, capsys):
    argv = ["bench", "depth-dropout", "--depth", "20", "--ratios", "0.5", "--batch", "2",
            "--iters", "2", "--rounds", "2", "--warmup", "0", "--device", "cpu",
            "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    result = json.loads((tmp_path / "bench.json").read_text())
    assert (tmp_path / "report.html").exists()
    assert [r["variant"] for r in result["rows"]] == [
        "baseline", "p=0 skip", "p=0.5 skip", "p=0.5 mask"
    ]  # fmt: skip
    row = result["rows"][2]
    assert {"forward_ms", "backward_ms", "total_ms", "saving", "theory_saving"} <= set(row)
    assert result["provenance"]["device"] == "cpu" and result["config"]["iters"] == 2
    assert result["planning_overhead"]["seconds_per_step"] > 0
    out = capsys.readouterr().out
    assert "p=0.5 skip" in out and "planning + gating overhead" in out


def test_stochastic_depth_variants():
    timing = depth.Timing(batch=2, iters=2, rounds=2, warmup=0)
    result = depth.run_stochastic_depth(depth=20, rules=("linear",), modes=("skip",), timing=timing)
    names = [r["variant"] for r in result["rows"]]
    assert names == ["constant depth", "linear p_L=0.5 skip"]
    assert result["rows"][1]["theory_saving"] == pytest.approx(0.5 * 10 / 18, abs=0.03)


def test_executor_bench_compares_identical_networks():
    result = executor_overhead.run(depth=20, batch=2, rounds=1, iters=1, warmup=0)
    assert result["max_output_gap"] < 1e-4 and result["ratio"] > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"ratios": (1.0,)}, "ratios must be in"), ({"modes": ("drop",)}, "skip or mask")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        depth.run_depth_dropout(depth=20, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"iters": 2, "rounds": 3}, "at least rounds"), ({"batch": 0}, "batch must be >= 1")],
)
def test_bad_timing(kwargs, match):
    with pytest.raises(ValueError, match=match):
        depth.Timing(**kwargs)
