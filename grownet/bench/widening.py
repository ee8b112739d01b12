"""Does gradual width mixing cost more than it saves? A network mid-widening against the same
network at its final width without mixing.

A CIFAR ResNet (projection shortcuts, so every stage's residual stream can widen) is built at
half its width and widened to the full width by a search's width stage
(:func:`grownet.search.widen_stage.widen_stage`: every layer twice as wide, the new units
handed over by ``width_dropin`` nodes). The *mixing* variant is that network with half of
every group's new units still off (q = 0.5, mid-schedule); the *final* variant is the same
modules, same weights, without the ``width_dropin`` nodes: what the network runs once the
schedule has ended. Their outputs are checked equal at q = 0 before timing; a training step
(forward and backward) of each is timed in interleaved rounds in one process, and the
overhead is the median over rounds of the two variants' ratio in that round.
"""

from __future__ import annotations

from typing import Any

import torch

from grownet.bench.timing import PairTiming, check_same_outputs, median, training_steps
from grownet.graph.executor import GraphNet
from grownet.graph.plan import StepPlan
from grownet.graph.widen import without_width_mixers
from grownet.provenance import environment
from grownet.search.spec import GrowthSpec
from grownet.search.widen_stage import widen_stage
from grownet.zoo import build

BUDGET = 0.05  # the mixing overhead the issue allows: 5 % over the final width
TIMING = PairTiming(rounds=10)


def run(
    *, depth: int = 56, width: int = 16, q: float = 0.5, timing: PairTiming = TIMING
) -> dict[str, Any]:
    """Time a training step mid-widening (``q`` of the new units off) and at the final width.

    Example:
        >>> r = run(depth=8, width=4, timing=PairTiming(batch=4, rounds=1, iters=1, warmup=0))
        >>> r["max_output_gap"] < 1e-5, r["config"]["widened_groups"] > 0
        (True, True)
    """
    if width < 2 or width % 2:
        raise ValueError(f"width must be an even number >= 2, got {width!r}")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q!r}")
    dev, memory_format, (x, y) = timing.prepare()
    thin = build("cifar_resnet", depth=depth, shortcut="B", width=width // 2)
    growth = GrowthSpec(kind="width", width_factor=2.0, stage_iters=1000, dropin_length=1000)
    graph, state, plans = widen_stage(thin, GraphNet(thin).state_dict(), growth, stage=1,
                                      seed=timing.seed)  # fmt: skip
    mixing = GraphNet(graph)
    mixing.load_state_dict(state)
    final = mixing.rebuilt(without_width_mixers(graph))  # the same modules, no mixers
    mixing = mixing.to(dev, memory_format=memory_format)
    final = final.to(dev, memory_format=memory_format)
    mixers = graph.nodes_of("width_dropin")
    mid = StepPlan(iteration=0, dropin_q=dict.fromkeys(mixers, q))
    mixed_in = StepPlan(iteration=0, dropin_q=dict.fromkeys(mixers, 0.0))
    mixing.eval(), final.eval()
    with torch.no_grad():
        gap = check_same_outputs(mixing(x, mixed_in), final(x), "mixed-in and final")
    variants = {"mixing": (mixing, lambda x: mixing(x, mid)), "final": (final, final)}
    samples = training_steps(variants, x, y, rounds=timing.rounds, iters=timing.iters,
                             warmup=timing.warmup, device=dev)  # fmt: skip
    mixing_s, final_s = median(samples["mixing"]), median(samples["final"])
    # Paired by round, as the other benchmarks' savings: a slow spell of a shared machine
    # slows both sides of each ratio alike.
    ratios = [m / f for m, f in zip(samples["mixing"], samples["final"], strict=True)]
    overhead = median(ratios) - 1.0
    return {
        "benchmark": "widening",
        "config": {
            "model": f"resnet{depth}",
            "shortcut": "B",
            "width_from": width // 2,
            "width_to": width,
            "widened_groups": len(plans),
            "width_dropin_nodes": len(mixers),
            "q": q,
            **timing.config(),
        },
        "provenance": environment(dev),
        "max_output_gap": gap,
        "mixing_ms": mixing_s * 1e3,
        "final_ms": final_s * 1e3,
        "overhead": overhead,
        "budget": BUDGET,
        "within_budget": overhead <= BUDGET,
        "samples_ms": {k: [v * 1e3 for v in vs] for k, vs in samples.items()},
    }
