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

from grownet.bench.timing import median, sync
from grownet.graph import NetGraph
from grownet.graph.executor import GraphNet, exclusive_branches
from grownet.graph.plan import Planner, StepPlan
from grownet.provenance import environment
from grownet.zoo import build


@dataclass(frozen=True)
class Unit:
    """One residual unit: its gate node, branch and shortcut MACs, and drop probability."""

    node: str
    branch_macs: int
    shortcut_macs: int
    drop_prob: float


def residual_units(graph: NetGraph) -> list[Unit]:
    """The gated residual units of ``graph`` with the MACs of their exclusive paths."""
    branches = exclusive_branches(graph)
    costs = graph.costs()
    units = []
    for node in graph.nodes_of("gated_add"):
        branch_in, shortcut_in = graph.inputs(node)
        branch = branches[(branch_in, node)]
        shortcut = branches[(shortcut_in, node)]
        units.append(
            Unit(
                node=node,
                branch_macs=sum(costs[n].macs for n in branch),
                shortcut_macs=sum(costs[n].macs for n in shortcut),
                drop_prob=graph.spec(node).params["drop_prob"],
            )
        )
    return units


def theoretical_saving(
    units: Sequence[Unit], *, shortcut_share: float | None = None, baseline_shortcuts: bool = False
) -> float:
    """The papers' expected saving over the baseline ResNet, from per-unit MACs.

    Guo & Gould's formula: a droppable unit costs ``(1 - p) B + S`` (its branch when it runs,
    its trainable shortcut always), an exempt unit ``B``, the baseline unit ``B``; everything
    outside the units and the element-wise ops are ignored. For ResNet-56 with 3 exempt units
    and S = B / 9 this gives 12.3 / 34.6 / 56.7 % at p = 0.25 / 0.5 / 0.75. For stochastic
    depth the shortcuts are identities or parameter-free (S = 0), so the saving is the
    expected share of branch work dropped. ``baseline_shortcuts`` counts the shortcuts in the
    baseline too (a baseline that has them, such as the same net at p = 0).

    S and B come from the graph's MACs, where a 1x1 shortcut is 1/18 of a two-conv branch.
    The paper sets S = B / 9 (Sec. IV-A: "24 (1/9) tau", tau being the whole primary path);
    ``shortcut_share=1/9`` applies that, and with it the paper's 12.3 / 34.6 / 56.7 % follow.

    Example:
        >>> units = [Unit("a", 9, 1, 0.0)] * 3 + [Unit("b", 9, 1, 0.5)] * 24
        >>> round(100 * theoretical_saving(units), 1)
        34.6
    """
    base = sum(u.branch_macs + (u.shortcut_macs if baseline_shortcuts else 0) for u in units)

    def cost(u: Unit) -> float:
        if u.drop_prob == 0:
            return u.branch_macs
        shortcut = u.shortcut_macs if shortcut_share is None else shortcut_share * u.branch_macs
        return (1 - u.drop_prob) * u.branch_macs + shortcut

    return 1.0 - sum(cost(u) for u in units) / base


@dataclass(frozen=True)
class Timing:
    """How to time: batch, timed and warm-up iterations per variant, rounds, device, seed.

    The paper averaged 500 iterations on one GPU; a 2-core CPU affords a few dozen.
    """

    batch: int = 64
    iters: int = 30
    warmup: int = 3
    rounds: int = 5
    device: str = "cpu"
    channels_last: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("batch", "iters", "rounds"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)!r}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup!r}")
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
    paper_theory_saving: float | None
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
        self.device = device
        self.forward_s: list[float] = []
        self.backward_s: list[float] = []
        self.active: list[int] = []

    def step(self, x: Tensor, y: Tensor, plan: StepPlan, *, record: bool) -> None:
        self.net.zero_grad(set_to_none=True)
        sync(self.device)
        t0 = time.perf_counter()
        loss = F.cross_entropy(self.net(x, plan), y)
        sync(self.device)
        t1 = time.perf_counter()
        loss.backward()
        sync(self.device)
        t2 = time.perf_counter()
        if record:
            self.forward_s.append(t1 - t0)
            self.backward_s.append(t2 - t1)
            self.active.append(self.units - len(plan.closed_gates))


def _interleave(
    timed: dict[str, _Timed], x: Tensor, y: Tensor, *, iters: int, warmup: int, rounds: int
) -> None:
    """Time every variant on the same iterations, alternating variants round by round."""
    for t in timed.values():
        for i in range(warmup):
            t.step(x, y, t.planner.draw(10_000_000 + i), record=False)
    per_round = max(1, iters // rounds)
    for r in range(rounds):
        names = list(timed) if r % 2 == 0 else list(reversed(timed))
        for name in names:
            t = timed[name]
            for i in range(r * per_round, (r + 1) * per_round):
                t.step(x, y, t.planner.draw(i), record=True)


Spec = tuple[float, str, float | None, float | None]
"""(ratio, mode, theory from graph MACs, theory by the paper's own formula) of a variant."""


def _rows(timed: dict[str, _Timed], specs: dict[str, Spec], baseline: str) -> list[Row]:
    base_total = median([f + b for f, b in zip(*_fb(timed[baseline]), strict=True)])
    rows = []
    for name, t in timed.items():
        fwd, bwd = _fb(t)
        total = median([f + b for f, b in zip(fwd, bwd, strict=True)])
        ratio, mode, theory, paper_theory = specs[name]
        rows.append(
            Row(
                variant=name,
                ratio=ratio,
                mode=mode,
                forward_ms=median(fwd) * 1e3,
                backward_ms=median(bwd) * 1e3,
                total_ms=total * 1e3,
                saving=1.0 - total / base_total,
                theory_saving=theory,
                paper_theory_saving=paper_theory,
                active_units=sum(t.active) / len(t.active) if t.active else 0.0,
            )
        )
    return rows


def _fb(t: _Timed) -> tuple[list[float], list[float]]:
    return t.forward_s, t.backward_s


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
    units never dropped) at each ratio, in each mode.
    """
    _check_ratios(ratios, modes)
    graphs: dict[str, NetGraph] = {"baseline": build("cifar_resnet", depth=depth, shortcut="A")}
    specs: dict[str, Spec] = {"baseline": (0.0, "-", 0.0, 0.0)}
    for p in (0.0, *ratios):
        for mode in modes if p > 0 else ("skip",):
            g = build("cifar_resnet", depth=depth, shortcut="conv1x1", depth_dropout=p, mode=mode)
            name = f"p={p:g} {mode}"
            graphs[name] = g
            units = residual_units(g)
            paper = theoretical_saving(units, shortcut_share=1 / 9)
            # At p = 0 nothing is dropped: the row shows what the 1x1 shortcuts cost.
            theories = (theoretical_saving(units), paper) if p > 0 else (None, None)
            specs[name] = (p, mode, *theories)
    return _measure("depth_dropout", f"resnet{depth}", graphs, specs, timing, progress)


def run_stochastic_depth(
    *,
    depth: int = 110,
    rules: Sequence[str] = ("linear", "uniform"),
    p_last: float = 0.5,
    modes: Sequence[str] = ("skip", "mask"),
    timing: Timing = Timing(iters=20, warmup=2),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Huang et al.: CIFAR ResNet-``depth`` with stochastic depth vs the constant-depth net.

    Both use the paper's transition shortcut (2x2 average pool + zero channel padding).
    """
    _check_ratios((p_last,), modes)
    graphs = {"constant depth": build("cifar_resnet", depth=depth, shortcut="avgpool")}
    specs: dict[str, Spec] = {"constant depth": (0.0, "-", 0.0, 0.0)}
    for rule in rules:
        for mode in modes:
            g = build(
                "cifar_resnet", depth=depth, shortcut="avgpool", stochastic_depth=rule,
                p_last=p_last, mode=mode,
            )  # fmt: skip
            name = f"{rule} p_L={p_last:g} {mode}"
            graphs[name] = g
            theory = theoretical_saving(residual_units(g))
            specs[name] = (1.0 - p_last, mode, theory, theory)
    return _measure("stochastic_depth", f"resnet{depth}", graphs, specs, timing, progress)


def _check_ratios(ratios: Sequence[float], modes: Sequence[str]) -> None:
    for p in ratios:
        if not 0.0 < p < 1.0:
            raise ValueError(f"dropout ratios must be in (0, 1), got {p!r}")
    for mode in modes:
        if mode not in ("skip", "mask"):
            raise ValueError(f"modes must be skip or mask, got {mode!r}")


def _measure(
    benchmark: str,
    model: str,
    graphs: dict[str, NetGraph],
    specs: dict[str, Spec],
    timing: Timing,
    progress: Callable[[str], None] | None,
) -> dict[str, Any]:
    device = torch.device(timing.device)
    batch, iters, channels_last = timing.batch, timing.iters, timing.channels_last
    seed = timing.seed
    timed = {
        name: _Timed(g, seed=seed, device=device, channels_last=channels_last)
        for name, g in graphs.items()
    }
    x = torch.randn(batch, *graphs["baseline" if "baseline" in graphs else next(iter(graphs))]
                    .input_shape, device=device)  # fmt: skip
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)
    if progress:
        progress(f"timing {len(timed)} variants x {iters} iterations on {device}")
    _interleave(timed, x, y, iters=iters, warmup=timing.warmup, rounds=timing.rounds)
    baseline = next(iter(graphs))
    rows = _rows(timed, specs, baseline)
    memory = {
        name: saved_activation_bytes(t.net, x, y, t.planner.draw(0), device)
        for name, t in timed.items()
        if specs[name][1] != "mask"
    }
    overhead = planning_overhead(timed[_reference(specs)], iters=200)
    step_s = next(r.total_ms for r in rows if r.variant == _reference(specs)) / 1e3
    return {
        "benchmark": benchmark,
        "model": model,
        "config": {**asdict(timing), "statistic": "median"},
        "provenance": environment(device),
        "rows": [asdict(r) for r in rows],
        "activation_bytes": memory,
        "planning_overhead": {"seconds_per_step": overhead, "share_of_step": overhead / step_s,
                              "variant": _reference(specs)},
    }  # fmt: skip


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
    """The paper's Table II layout, plus theory columns and measured/theory ratios."""
    prov = result["provenance"]
    lines = [
        f"{result['benchmark']} on {result['model']}, batch {result['config']['batch']}, "
        f"{prov['device']} ({prov['device_name']}), {prov['threads']} threads, "
        f"torch {prov['torch']}; medians over {result['config']['iters']} iterations",
        f"{'variant':24s} {'fwd ms':>8s} {'bwd ms':>8s} {'total ms':>9s} {'saving':>7s} "
        f"{'theory':>7s} {'meas/th':>7s} {'paper th':>8s} {'meas/pth':>8s} {'units on':>8s}",
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
            f"{ratio(r, 'paper_theory_saving'):>8s} {r['active_units']:8.1f}"
        )
    mem = result["activation_bytes"]
    lines.append(
        "saved activations: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in mem.items())
    )
    o = result["planning_overhead"]
    lines.append(
        f"planning + gating overhead: {o['seconds_per_step'] * 1e6:.0f} us/step = "
        f"{100 * o['share_of_step']:.2f}% of a '{o['variant']}' step"
    )
    return "\n".join(lines)
