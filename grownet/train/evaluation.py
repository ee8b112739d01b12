"""Evaluating a network on a split: loss and accuracy for the curves, per-sample correctness
for paired comparisons. Both run in eval mode under one step's plan and put the network back
in train mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from grownet.graph.executor import GraphNet
from grownet.graph.plan import StepPlan
from grownet.train import distributed
from grownet.train.signal import SignalProbe, in_order

Autocast = Callable[[], contextlib.AbstractContextManager[Any]]


def prediction_loss(out: Tensor, y: Tensor, *, reduction: str = "mean") -> Tensor:
    """Cross-entropy of logits ``out`` against labels ``y``, classes in the last dimension:
    one label per sample (``out`` (N, K), ``y`` (N,)) or one per position (a language model's
    ``out`` (N, S, V), ``y`` (N, S); every token counts once).

    >>> prediction_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long)).item()
    1.3862943649291992
    """
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction=reduction)


def hits(out: Tensor, y: Tensor) -> Tensor:
    """Whether each label is the top class of its logits (shape of ``y``)."""
    return out.argmax(-1) == y


def evaluate(
    net: GraphNet,
    loader: Iterable[tuple[Tensor, Tensor]],
    plan: StepPlan,
    *,
    autocast: Autocast,
    world: distributed.World,
    device: torch.device,
) -> tuple[float, float, dict[str, float]]:
    """Mean loss, accuracy and the layers' signal (measured on the first batch, see
    :mod:`grownet.train.signal`) over a whole split.

    Under DDP every rank evaluates the whole split with rank 0's BatchNorm statistics (the
    simplest way to the same numbers everywhere; the split is small next to training), and
    every rank returns rank 0's numbers, so decisions taken on them agree bit for bit.
    """
    if world.distributed:
        distributed.broadcast(net.buffers())
    net.eval()
    total, correct = 0, torch.zeros((), device=device)
    loss_sum = torch.zeros((), device=device)
    probe = SignalProbe(net.layers.items())
    with torch.no_grad(), autocast():
        for i, (x, y) in enumerate(loader):
            with probe if i == 0 else contextlib.nullcontext():
                out = net(x, plan).float()
            loss_sum += prediction_loss(out, y, reduction="sum")
            correct += hits(out, y).sum()
            total += y.numel()
    net.train()
    signal = in_order(probe.signal, net.graph.topological_order())
    numbers = torch.tensor(
        [loss_sum.item() / total, correct.item() / total], dtype=torch.float64, device=device
    )
    if world.distributed:
        dist.broadcast(numbers, src=0)
    loss, accuracy = numbers.tolist()
    return loss, accuracy, signal


def correctness(
    net: GraphNet, loader: Iterable[tuple[Tensor, Tensor]], plan: StepPlan, *, autocast: Autocast
) -> Tensor:
    """Per-sample correctness (on the CPU) over a whole split, in the split's order: bool per
    sample, or where every position has its label (text) each sequence's share of positions
    right, the unit a paired comparison of two language models takes (its tokens are not
    independent samples)."""
    net.eval()
    flags = []
    with torch.no_grad(), autocast():
        for x, y in loader:
            right = hits(net(x, plan), y).cpu()
            flags.append(right.float().flatten(1).mean(1) if right.dim() > 1 else right)
    net.train()
    return torch.cat(flags)


def recalibrate_batchnorm(
    net: GraphNet, batches: Iterable[tuple[Tensor, Tensor]], plan: StepPlan, *, autocast: Autocast
) -> int:
    """Reset every BatchNorm's running statistics and estimate them afresh, as the plain
    average over ``batches`` (forward passes in train mode, no gradients) under ``plan``;
    returns the number of samples read. The net is left in train mode."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: a cumulative average over every batch seen
    seen = 0
    net.train()
    with torch.no_grad(), autocast():
        for x, _ in batches:
            net(x, plan)
            seen += x.shape[0]
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return seen
