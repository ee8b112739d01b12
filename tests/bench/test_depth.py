"""Benchmarks are not tests: these check what the benchmarks compute, never how fast."""

import json
import time

import pytest
import torch

from grownet.bench import depth, executor_overhead, theory
from grownet.bench.timing import PairTiming, StepClock
from grownet.cli import main
from grownet.graph.executor import GraphNet
from grownet.graph.plan import StepPlan
from grownet.zoo import build


@pytest.mark.parametrize(
    ("p", "paper", "by_macs"), [(0.25, 0.123, 0.126), (0.5, 0.346, 0.352), (0.75, 0.567, 0.579)]
)
def test_paper_formula_on_resnet56_gives_the_papers_theory(p, paper, by_macs):
    units = theory.unit_costs(build("resnet56", shortcut="conv1x1", depth_dropout=p))
    assert len(units) == 27 and sum(u.drop_prob > 0 for u in units) == 24
    # The paper's count: 27 equal units, 3 never dropped, a shortcut 1/9 of a unit (it
    # truncates 56.79 % to 56.7).
    assert theory.paper_saving(units) == pytest.approx(paper, abs=0.001)
    # Weighted by MACs the strided units are cheaper, so a little more is saved.
    assert theory.theoretical_saving(units, shortcut_share=1 / 9) == pytest.approx(
        by_macs, abs=0.0005
    )
    # From the graph's own MACs a 1x1 shortcut is 1/18 of a branch, so more still.
    assert theory.theoretical_saving(units) > paper + 0.04


def test_units_measure_branch_and_shortcut():
    units = theory.unit_costs(build("resnet20", shortcut="conv1x1"))
    first = units[0]
    assert first.branch_macs == 2 * 16 * 16 * 9 * 32 * 32
    assert first.shortcut_macs == 16 * 16 * 32 * 32


UNITS = [theory.Unit("a", 9, 1, 0.0)] * 3 + [theory.Unit("b", 9, 1, 0.5)] * 24


@pytest.mark.parametrize(
    ("fn", "kwargs", "expected"),
    [
        (theory.theoretical_saving, {}, 1 - (27 + 24 * 5.5) / 243),
        (theory.theoretical_saving, {"shortcut_share": 1 / 9}, 1 - (27 + 24 * 5.5) / 243),
        (theory.theoretical_saving, {"shortcut_share": 0.0}, 24 * 4.5 / 243),
        (theory.shortcut_cost, {}, 27 / 243),  # every unit's shortcut, by MACs
        (theory.shortcut_cost, {"shortcut_share": 1 / 9}, 24 / 243),  # droppable ones only
        (theory.skip_saving, {}, 24 * 4.5 / 270),  # both networks have their shortcuts
        (theory.paper_saving, {}, 1 - (3 + 24 * (0.5 + 1 / 9)) / 27),  # equal units
        (theory.paper_saving, {"shortcut_share": 0.0}, 24 * 0.5 / 27),
        (theory.paper_shortcut_cost, {}, 24 / 9 / 27),
    ],
)
def test_theory_formulas(fn, kwargs, expected):
    assert fn(UNITS, **kwargs) == pytest.approx(expected)


@pytest.mark.parametrize(
    "fn",
    [
        theory.theoretical_saving,
        theory.shortcut_cost,
        theory.paper_saving,
        theory.paper_shortcut_cost,
    ],
)
def test_shortcut_share_is_checked(fn):
    with pytest.raises(ValueError, match="shortcut_share must be in"):
        fn(UNITS, shortcut_share=9.0)


def test_shortcut_parts_take_away_relus_then_batchnorms():
    p0 = build("resnet20", shortcut="conv1x1", depth_dropout=0.0)
    parts = depth._shortcut_parts(p0)
    assert list(parts) == ["p=0 shortcut conv+BatchNorm", "p=0 shortcut conv"]
    counts = [(len(g.nodes_of("relu")), len(g.nodes_of("batchnorm"))) for g in parts.values()]
    relus, bns = len(p0.nodes_of("relu")), len(p0.nodes_of("batchnorm"))
    assert counts == [(relus - 9, bns), (relus - 9, bns - 9)]  # 9 units, one shortcut each


@pytest.mark.parametrize(("iters", "rounds"), [(5, 2), (7, 7), (30, 4)])
def test_every_iteration_is_timed_once_across_rounds(iters, rounds):
    graph = build("cifar_resnet", depth=8, depth_dropout=0.5)
    timed = {"a": depth._Timed(graph, seed=0, device=torch.device("cpu"), channels_last=False)}
    x, y = torch.randn(1, 3, 32, 32), torch.randint(0, 10, (1,))
    depth._interleave(timed, x, y, iters=iters, warmup=0, rounds=rounds)
    assert len(timed["a"].forward_s) == len(timed["a"].backward_s) == iters


def test_rounds_default_to_one_per_iteration():
    assert depth.Timing(iters=12).rounds == 12 and depth.Timing(iters=12, rounds=3).rounds == 3


def test_step_clock_on_cpu_gives_one_interval_per_pair_of_marks():
    clock = StepClock(torch.device("cpu"))
    clock.start()
    time.sleep(0.02)
    clock.mark()
    clock.mark()
    slept, instant = clock.intervals()
    assert slept >= 0.02 > instant >= 0


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
    # The paper's formula counts 9 equal units, 6 droppable; the MAC-weighted one is its own.
    assert row["paper_theory_saving"] == pytest.approx(1 - (3 + 6 * (0.5 + 1 / 9)) / 9)
    assert row["paper_theory_mac_saving"] > row["paper_theory_saving"]
    assert result["provenance"]["device"] == "cpu" and result["config"]["iters"] == 2
    assert result["planning_overhead"]["seconds_per_step"] > 0
    cost = result["shortcut_cost"]
    assert {"conv_ms", "batchnorm_ms", "relu_ms", "total_ms"} <= set(cost)
    assert cost["share_of_baseline"] == pytest.approx(-result["rows"][1]["saving"])  # the p=0 row
    assert cost["theory_share"] == pytest.approx(1 / 18, rel=0.1)  # strided ones are cheaper
    assert cost["paper_theory_share"] == pytest.approx(6 / 9 / 9)  # 6 of 9 droppable, 1/9 each
    assert set(result["skip_efficiency"]) == {"p=0.5 skip"}
    out = capsys.readouterr().out
    assert "p=0.5 skip" in out and "planning + gating overhead" in out and "pth MACs" in out
    assert "1x1 shortcuts at p=0 add" in out and "skipping vs the same net at p=0" in out
    lines = out.split("\n")
    assert result["findings"] == lines[-len(result["findings"]) - 4 : -4]
    (paper,) = result["paper"]  # the p=0.5 skip row; mask mode is not the paper's method
    assert (paper["variant"], paper["paper"]) == ("p=0.5 skip", "34.10 %")
    # Table II's savings are over its "0.0" row: the same network at p = 0, shortcuts and all.
    against_p0 = result["skip_efficiency"]["p=0.5 skip"]["saving"]
    assert paper["measured"] == f"{100 * against_p0:.2f} %"
    assert lines[-4].startswith("paper vs measured") and paper["verdict"] in lines[-3]
    page = (tmp_path / "report.html").read_text()
    assert "paper saving" in page and "depth dropout Table II (GPU)" in page


def test_stochastic_depth_variants():
    timing = depth.Timing(batch=2, iters=2, rounds=2, warmup=0)
    result = depth.run_stochastic_depth(depth=20, rules=("linear",), modes=("skip",), timing=timing)
    names = [r["variant"] for r in result["rows"]]
    assert names == ["constant depth", "linear p_L=0.5 skip"]
    assert result["rows"][1]["theory_saving"] == pytest.approx(0.5 * 10 / 18, abs=0.03)
    # Huang et al.'s count: the expected share of 9 equal ResBlocks bypassed.
    assert result["rows"][1]["paper_theory_saving"] == pytest.approx(0.5 * 10 / 18)
    assert [(p["variant"], p["paper"]) for p in result["paper"]] == [
        ("linear p_L=0.5 skip", "~25.00 %")
    ]


@pytest.mark.parametrize(
    ("saving", "verdict"),
    [(0.341, "reproduced"), (0.291, "reproduced"), (0.290, "not reproduced"),
     (0.40, "not reproduced")],
)  # fmt: skip
def test_timing_verdicts_allow_five_points(saving, verdict):
    from grownet.reproduce.timing import compare_to_paper

    rows = [{"variant": "p=0.5 skip", "ratio": 0.5, "mode": "skip", "saving": 0.0},
            {"variant": "p=0.5 mask", "ratio": 0.5, "mode": "mask", "saving": saving},
            {"variant": "p=0.4 skip", "ratio": 0.4, "mode": "skip", "saving": saving}]  # fmt: skip
    against_p0 = {"p=0.5 skip": {"saving": saving}, "p=0.4 skip": {"saving": saving}}
    result = {"benchmark": "depth_dropout", "rows": rows, "skip_efficiency": against_p0}
    (entry,) = compare_to_paper(result)
    assert entry["verdict"] == verdict and entry["tolerance_pp"] == 5.0
    stochastic = {"benchmark": "stochastic_depth", "rows": [
        {"variant": "linear p_L=0.5 skip", "ratio": 0.5, "mode": "skip", "saving": saving}]}
    (entry,) = compare_to_paper(stochastic)  # against constant depth: the row's own saving
    assert entry["measured"] == f"{100 * saving:.2f} %" and entry["paper"] == "~25.00 %"


def test_executor_bench_compares_identical_networks():
    timing = PairTiming(batch=2, rounds=1, iters=1, warmup=0)
    result = executor_overhead.run(depth=20, timing=timing)
    assert result["max_output_gap"] < 1e-4 and result["ratio"] > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ratios": (1.0,)}, "ratios must be in"),
        ({"modes": ("drop",)}, "skip or mask"),
        ({"ratios": ()}, "at least one ratio"),
    ],
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


def timed_steps(totals: list[float]) -> depth._Timed:
    """A timed variant whose steps took ``totals`` seconds (all of it forward)."""
    t = object.__new__(depth._Timed)
    t.forward_s, t.backward_s = list(totals), [0.0] * len(totals)
    return t


@pytest.mark.parametrize(
    ("a", "b", "rounds", "diff", "expected"),
    [
        ([1, 1, 10], [2, 2, 20], 3, False, 0.5),  # a slow spell in round 3 slowed both alike
        ([1, 1, 10], [2, 2, 20], 3, True, -1.0),
        ([1, 3, 2, 2], [1, 1, 4, 4], 2, False, 1.25),  # round means 2 / 1 and 2 / 4
    ],
)
def test_paired_compares_variants_round_by_round(a, b, rounds, diff, expected):
    assert depth.paired(timed_steps(a), timed_steps(b), rounds, diff=diff) == expected
