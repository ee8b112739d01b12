"""Depth dropout and stochastic depth: measured time saving vs the theory, skip vs mask.

The depth-dropout paper's protocol (Guo & Gould, Sec. IV-A-2): time the forward and backward
passes separately, averaged over many iterations on one device, for each dropout ratio, and
compare the saving over the baseline ResNet with the theoretical one. Here every variant is
timed in interleaved rounds in one process, the per-step plans are drawn from one seed so all
variants see the same gate draws, and "mask" mode — the branch computed, then multiplied by
zero, which is what timm's DropPath and torchvision's StochasticDepth amount to — is measured
beside "skip" mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from grownet.bench.theory import (
    Unit,
    paper_saving,
    paper_shortcut_cost,
    shortcut_cost,
    skip_saving,
    theoretical_saving,
    unit_costs,
)
from grownet.bench.timing import StepClock, check_timing_counts, median
from grownet.errors import BadValueError
from grownet.graph import NetGraph
from grownet.graph.executor import GraphNet, exclusive_branches
from grownet.graph.plan import Planner, StepPlan
from grownet.graph.surgery import remove_layer
from grownet.provenance import environment
from grownet.reproduce.timing import compare_to_paper, format_comparison
from grownet.zoo import build


@dataclass(frozen=True)
class Timing:
    """How to time: batch, timed and warm-up iterations per variant, rounds, device, seed.

    The paper averaged 500 iterations on one GPU; a 2-core CPU affords a few dozen. ``rounds``
    (default: one per iteration) is how often the variants take turns: the finer the turns,
    the less a slow spell of a shared machine lands on one variant alone.
    """

    batch: int = 64
    iters: int = 30
    warmup: int = 3
    rounds: int | None = None
    device: str = "cpu"
    channels_last: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rounds is None:
            object.__setattr__(self, "rounds", self.iters)
        check_timing_counts(self)
        if self.iters < self.rounds:
            raise ValueError(f"iters ({self.iters}) must be at least rounds ({self.rounds})")


@dataclass
class Row:
    variant: str
    ratio: float
    mode: str
    forward_ms: float
    backward_ms: float
    total_ms: float
    saving: float
    theory_saving: float | None
    """From the graph's MACs: branches and shortcuts as they are."""
    paper_theory_saving: float | None
    """The paper's formula as it states it: equal-cost units, a shortcut 1/9 of a branch."""
    paper_theory_mac_saving: float | None
    """The paper's formula with the units weighted by their MACs (shortcut 1/9 of a branch)."""
    active_units: float


class _Timed:
    """One network's training step, forward and backward timed separately."""

    def __init__(self, graph: NetGraph, *, seed: int, device: torch.device, channels_last: bool):
        torch.manual_seed(seed)
        self.graph = graph
        self.net = GraphNet(graph).to(device)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.planner = Planner(graph, seed=seed)
        self.units = len(graph.nodes_of("gated_add"))
        self.clock = StepClock(device)
        self.forward_s: list[float] = []
        self.backward_s: list[float] = []
        self.active: list[int] = []

    def step(self, x: Tensor, y: Tensor, plan: StepPlan, *, record: bool) -> None:
        self.net.zero_grad(set_to_none=True)
        self.clock.start()
        loss = F.cross_entropy(self.net(x, plan), y)
        self.clock.mark()
        loss.backward()
        self.clock.mark()
        forward, backward = self.clock.intervals()
        if record:
            self.forward_s.append(forward)
            self.backward_s.append(backward)
            self.active.append(self.units - len(plan.closed_gates))

    @property
    def total_s(self) -> float:
        return median(self._totals())

    def _totals(self) -> list[float]:
        return [f + b for f, b in zip(self.forward_s, self.backward_s, strict=True)]

    def per_round(self, rounds: int) -> list[float]:
        """Mean seconds per step in each round (the iterations are recorded in order)."""
        totals = self._totals()
        spans = [totals[span.start : span.stop] for span in round_spans(len(totals), rounds)]
        return [sum(span) / len(span) for span in spans]


def round_spans(iters: int, rounds: int) -> list[range]:
    """The iterations of each round: ``iters`` split as evenly as whole numbers allow.

    >>> round_spans(5, 2)
    [range(0, 2), range(2, 5)]
    """
    return [range(r * iters // rounds, (r + 1) * iters // rounds) for r in range(rounds)]


def paired(a: _Timed, b: _Timed, rounds: int, *, diff: bool = False) -> float:
    """Median over rounds of ``a``'s step time over ``b``'s (or minus it, in seconds).

    Both ran in the same round, one right after the other, so a slow spell of a shared machine
    slows both: pairing by round cancels it, where a ratio of two overall medians does not.
    """
    pairs = zip(a.per_round(rounds), b.per_round(rounds), strict=True)
    return median([x - y if diff else x / y for x, y in pairs])


def _interleave(
    timed: dict[str, _Timed], x: Tensor, y: Tensor, *, iters: int, warmup: int, rounds: int
) -> None:
    """Time every variant on the same iterations, alternating variants round by round."""
    for t in timed.values():
        for i in range(warmup):
            t.step(x, y, t.planner.draw(10_000_000 + i), record=False)
    for r, span in enumerate(round_spans(iters, rounds)):
        names = list(timed) if r % 2 == 0 else list(reversed(timed))
        for name in names:
            t = timed[name]
            for i in span:
                t.step(x, y, t.planner.draw(i), record=True)


Spec = tuple[float, str, float | None, float | None, float | None]
"""(ratio, mode, theory from graph MACs, the paper's formula, the paper's formula weighted by
MACs) of a variant."""


def _rows(timed: dict[str, _Timed], specs: dict[str, Spec], rounds: int) -> list[Row]:
    baseline = timed[next(iter(specs))]
    rows = []
    for name, spec in specs.items():
        t = timed[name]
        ratio, mode, theory, paper_theory, paper_mac = spec
        rows.append(
            Row(
                variant=name,
                ratio=ratio,
                mode=mode,
                forward_ms=median(t.forward_s) * 1e3,
                backward_ms=median(t.backward_s) * 1e3,
                total_ms=t.total_s * 1e3,
                saving=1.0 - paired(t, baseline, rounds),
                theory_saving=theory,
                paper_theory_saving=paper_theory,
                paper_theory_mac_saving=paper_mac,
                active_units=sum(t.active) / len(t.active) if t.active else 0.0,
            )
        )
    return rows


# The shortcut's layers the breakdown takes away one at a time, last first.
_SHORTCUT_PARTS = (("relu", "ReLU"), ("batchnorm", "BatchNorm"))


def run_depth_dropout(
    *,
    depth: int = 56,
    ratios: Sequence[float] = (0.25, 0.5, 0.75),
    modes: Sequence[str] = ("skip", "mask"),
    timing: Timing = Timing(),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Guo & Gould's Table II for CIFAR ResNet-``depth``: time per step at each ratio.

    Baseline: the original ResNet (option-A identity shortcuts), as in the paper. Variants: the
    depth-dropout network (1x1 conv + BN + ReLU shortcut on every unit, the 3 first-of-stage
    units never dropped) at each ratio, in each mode. Beside them, timed in the same rounds,
    the p = 0 network without its shortcuts' ReLUs and then without their BatchNorms: what each
    part of the shortcut costs, which the theory counts as 1/9 of a branch (or 1/18 by MACs).
    """
    check_ratios(ratios, modes)
    graphs: dict[str, NetGraph] = {"baseline": build("cifar_resnet", depth=depth, shortcut="A")}
    specs: dict[str, Spec] = {"baseline": (0.0, "-", 0.0, 0.0, 0.0)}
    units = {}
    for p in (0.0, *ratios):
        for mode in modes if p > 0 else ("skip",):
            g = build("cifar_resnet", depth=depth, shortcut="conv1x1", depth_dropout=p, mode=mode)
            name = f"p={p:g} {mode}"
            graphs[name] = g
            units[name] = unit_costs(g)
            theories = (
                theoretical_saving(units[name]),
                paper_saving(units[name]),  # equal units, as the paper counts: 34.6 % at 0.5
                theoretical_saving(units[name], shortcut_share=1 / 9),  # by MACs: 35.2 %
            )
            # At p = 0 nothing is dropped: the row shows what the 1x1 shortcuts cost.
            theories = theories if p > 0 else (None, None, None)
            specs[name] = (p, mode, *theories)
    parts = _shortcut_parts(graphs["p=0 skip"])
    timed, batch = _time_all({**graphs, **parts}, timing, progress)
    rounds = timing.rounds
    # Which units the paper charges a shortcut to depends on which may drop: ask a p > 0 net.
    droppable = units[next(n for n in specs if specs[n][0] > 0)]
    skip_rows = [n for n in specs if specs[n][1] == "skip" and specs[n][0] > 0]
    extra = {
        "shortcut_cost": _shortcut_breakdown(timed, droppable, list(parts), rounds),
        "skip_efficiency": {
            n: {"saving": 1.0 - paired(timed[n], timed["p=0 skip"], rounds),
                "theory": skip_saving(units[n])}
            for n in skip_rows
        },
    }  # fmt: skip
    return _result("depth_dropout", f"resnet{depth}", timed, batch, specs, timing, extra)


def _shortcut_parts(p0: NetGraph) -> dict[str, NetGraph]:
    """The p = 0 network without its shortcuts' ReLUs, then also without their BatchNorms."""
    branches = exclusive_branches(p0)
    shortcuts = [branches[(p0.inputs(add)[1], add)] for add in p0.nodes_of("gated_add")]
    parts, graph, kept = {}, p0, ["conv", "BatchNorm", "ReLU"]
    for op, label in _SHORTCUT_PARTS:
        for node in sorted(n for nodes in shortcuts for n in nodes if p0.op(n) == op):
            graph = remove_layer(graph, node)
        kept.remove(label)
        parts[f"p=0 shortcut {'+'.join(kept)}"] = graph
    return parts


def _shortcut_breakdown(
    timed: dict[str, _Timed], units: Sequence[Unit], part_names: Sequence[str], rounds: int
) -> dict[str, float]:
    """Milliseconds each part of the shortcuts adds to a step, and all of them as a share."""
    base, with_all = timed["baseline"], timed["p=0 skip"]
    without_relu, conv_only = (timed[n] for n in part_names)

    def ms(a: _Timed, b: _Timed) -> float:
        return paired(a, b, rounds, diff=True) * 1e3

    return {
        "conv_ms": ms(conv_only, base),
        "batchnorm_ms": ms(without_relu, conv_only),
        "relu_ms": ms(with_all, without_relu),
        "total_ms": ms(with_all, base),
        "share_of_baseline": paired(with_all, base, rounds) - 1.0,
        "theory_share": shortcut_cost(units),
        "paper_theory_share": paper_shortcut_cost(units),
        "paper_theory_mac_share": shortcut_cost(units, shortcut_share=1 / 9),
    }


def run_stochastic_depth(
    *,
    depth: int = 110,
    rules: Sequence[str] = ("linear", "uniform"),
    p_last: float = 0.5,
    modes: Sequence[str] = ("skip", "mask"),
    timing: Timing = Timing(),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Huang et al.: CIFAR ResNet-``depth`` with stochastic depth vs the constant-depth net.

    Both use the paper's transition shortcut (2x2 average pool + zero channel padding).
    """
    check_ratios((p_last,), modes)
    graphs = {"constant depth": build("cifar_resnet", depth=depth, shortcut="avgpool")}
    specs: dict[str, Spec] = {"constant depth": (0.0, "-", 0.0, 0.0, 0.0)}
    for rule in rules:
        for mode in modes:
            g = build(
                "cifar_resnet", depth=depth, shortcut="avgpool", stochastic_depth=rule,
                p_last=p_last, mode=mode,
            )  # fmt: skip
            name = f"{rule} p_L={p_last:g} {mode}"
            graphs[name] = g
            # Huang et al. count ResBlocks as equal (expected depth); the MACs do not.
            theory = theoretical_saving(unit_costs(g))
            paper = paper_saving(unit_costs(g), shortcut_share=0.0)
            specs[name] = (1.0 - p_last, mode, theory, paper, theory)
    timed, batch = _time_all(graphs, timing, progress)
    return _result("stochastic_depth", f"resnet{depth}", timed, batch, specs, timing)


def check_ratios(ratios: Sequence[float], modes: Sequence[str]) -> None:
    """Dropout ratios in (0, 1) and modes skip / mask, at least one of each (checked before
    anything is built or timed).

    >>> check_ratios([0.5], ["skip"])
    """
    if not ratios or not modes:
        raise BadValueError(f"give at least one ratio and one mode, got {ratios!r} and {modes!r}")
    for p in ratios:
        if not 0.0 < p < 1.0:
            raise BadValueError(f"dropout ratios must be in (0, 1), got {p!r}")
    for mode in modes:
        if mode not in ("skip", "mask"):
            raise BadValueError(f"modes must be skip or mask, got {mode!r}")


def _time_all(
    graphs: dict[str, NetGraph], timing: Timing, progress: Callable[[str], None] | None
) -> tuple[dict[str, _Timed], tuple[Tensor, Tensor]]:
    """Every network's steps, timed in the same interleaved rounds on the same batch."""
    device = torch.device(timing.device)
    timed = {
        name: _Timed(g, seed=timing.seed, device=device, channels_last=timing.channels_last)
        for name, g in graphs.items()
    }
    first = next(iter(graphs.values()))
    x = torch.randn(timing.batch, *first.input_shape, device=device)
    if timing.channels_last:
        x = x.to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (timing.batch,), device=device)
    if progress:
        progress(f"timing {len(timed)} variants x {timing.iters} iterations on {device}")
    assert timing.rounds is not None  # set by Timing
    _interleave(timed, x, y, iters=timing.iters, warmup=timing.warmup, rounds=timing.rounds)
    return timed, (x, y)


def _result(
    benchmark: str,
    model: str,
    timed: dict[str, _Timed],
    batch: tuple[Tensor, Tensor],
    specs: dict[str, Spec],
    timing: Timing,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The result document: rows, memory, overhead, ``extra`` measurements, and the findings
    drawn from all of them."""
    device = torch.device(timing.device)
    rows = _rows(timed, specs, timing.rounds)
    memory = {
        name: saved_activation_bytes(t.net, *batch, t.planner.draw(0), device)
        for name, t in timed.items()
        if name in specs and specs[name][1] != "mask"
    }
    reference = _reference(specs)
    overhead = planning_overhead(timed[reference], iters=200)
    result = {
        "benchmark": benchmark,
        "model": model,
        "config": {**asdict(timing), "statistic": "median"},
        "provenance": environment(device),
        "rows": [asdict(r) for r in rows],
        "activation_bytes": memory,
        "planning_overhead": {"seconds_per_step": overhead,
                              "share_of_step": overhead / timed[reference].total_s,
                              "variant": reference},
        **(extra or {}),
    }  # fmt: skip
    result["findings"] = findings(result)
    result["paper"] = compare_to_paper(result)
    return result


def _reference(specs: dict[str, Spec]) -> str:
    """The variant the overhead is judged against: ratio 0.5 in skip mode, else the first."""
    skip = [n for n, spec in specs.items() if spec[1] == "skip"]
    return next((n for n in skip if specs[n][0] == 0.5), skip[0] if skip else next(iter(specs)))


def saved_activation_bytes(
    net: GraphNet, x: Tensor, y: Tensor, plan: StepPlan, device: torch.device
) -> int:
    """Bytes autograd keeps for backward in one training step (CUDA: peak allocated).

    On the CPU, the sum of the distinct storages packed by autograd's saved-tensor hooks: what a
    skipped branch would have stored, it does not. On CUDA, the peak memory of the step.
    """
    net.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        F.cross_entropy(net(x, plan), y).backward()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(net(x, plan), y)
    loss.backward()
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    return sum(n for ptr, n in seen.items() if ptr not in params)


def planning_overhead(t: _Timed, *, iters: int) -> float:
    """Seconds per step spent drawing the plan and working out what to skip."""
    start = time.perf_counter()
    for i in range(iters):
        plan = t.planner.draw(50_000_000 + i)
        t.net._schedule(t.net.closed_edges(plan))
    return (time.perf_counter() - start) / iters


def format_table(result: dict[str, Any]) -> str:
    """The paper's Table II layout, plus theory columns and measured/theory ratios.

    "theory" is from the graph's MACs; "paper th" the paper's formula as it states it (equal
    units, shortcut 1/9 of a branch); "pth MACs" that formula with units weighted by MACs."""
    prov = result["provenance"]
    lines = [
        f"{result['benchmark']} on {result['model']}, batch {result['config']['batch']}, "
        f"{prov['device']} ({prov['device_name']}), {prov['threads']} threads, "
        f"torch {prov['torch']}; medians over {result['config']['iters']} iterations, savings "
        f"paired by round ({result['config']['rounds']} rounds)",
        f"{'variant':24s} {'fwd ms':>8s} {'bwd ms':>8s} {'total ms':>9s} {'saving':>7s} "
        f"{'theory':>7s} {'meas/th':>7s} {'paper th':>8s} {'meas/pth':>8s} {'pth MACs':>8s} "
        f"{'units on':>8s}",
    ]

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    def ratio(row: dict[str, Any], key: str) -> str:
        theory = row[key]
        if row["mode"] != "skip" or not theory:
            return "-"
        return f"{row['saving'] / theory:.2f}"

    for r in result["rows"]:
        lines.append(
            f"{r['variant']:24s} {r['forward_ms']:8.1f} {r['backward_ms']:8.1f} "
            f"{r['total_ms']:9.1f} {pct(r['saving']):>7s} {pct(r['theory_saving']):>7s} "
            f"{ratio(r, 'theory_saving'):>7s} {pct(r['paper_theory_saving']):>8s} "
            f"{ratio(r, 'paper_theory_saving'):>8s} "
            f"{pct(r.get('paper_theory_mac_saving')):>8s} {r['active_units']:8.1f}"
        )
    return "\n".join(lines + result["findings"] + format_comparison(result.get("paper", [])))


def findings(result: dict[str, Any]) -> list[str]:
    """One line each: saved activations, the shortcuts' cost by part, how much of the theory
    the skipping itself delivers, and the planning overhead."""
    pct = "{:.1%}".format
    mem = result["activation_bytes"]
    lines = ["saved activations: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in mem.items())]
    cost = result.get("shortcut_cost")
    if cost:
        lines.append(
            f"1x1 shortcuts at p=0 add {cost['total_ms']:.1f} ms = "
            f"{pct(cost['share_of_baseline'])} of a baseline step (conv {cost['conv_ms']:.1f}, "
            f"BatchNorm {cost['batchnorm_ms']:.1f}, ReLU {cost['relu_ms']:.1f} ms); theory "
            f"{pct(cost['theory_share'])} by MACs, {pct(cost['paper_theory_share'])} by the "
            "paper's 1/9 of equal units"
        )
    efficiency = result.get("skip_efficiency")
    if efficiency:
        lines.append(
            "skipping vs the same net at p=0: "
            + ", ".join(
                f"{name.split()[0]} {pct(e['saving'])} of {pct(e['theory'])} "
                f"({e['saving'] / e['theory']:.2f})"
                for name, e in efficiency.items()
            )
        )
    o = result["planning_overhead"]
    lines.append(
        f"planning + gating overhead: {o['seconds_per_step'] * 1e6:.0f} us/step = "
        f"{100 * o['share_of_step']:.2f}% of a '{o['variant']}' step"
    )
    return lines
