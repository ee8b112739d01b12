"""What does running a network as a graph cost? ResNet as a NetGraph vs a hand-written module.

Both networks hold the same weights (copied, and the outputs checked equal before timing), and
forward+backward of a training step is timed in interleaved rounds in one process.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from grownet.bench.timing import PairTiming, check_same_outputs, median, training_steps
from grownet.graph.executor import GraphNet
from grownet.provenance import environment
from grownet.zoo import build

TIMING = PairTiming()  # 7 rounds of 3 steps, 2 warm-up, batch 64, CPU


class _BasicBlock(nn.Module):
    """He et al.'s CIFAR basic block with the option-A (strided identity, zero-pad) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.pad:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.pad))
        return F.relu(out + shortcut)


class HandResNet(nn.Module):
    """A plain hand-written CIFAR ResNet-(6n+2), option-A shortcuts: the reference to beat."""

    def __init__(self, depth: int, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2, got {depth!r}")
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for stage, cout in enumerate((16, 32, 64)):
            for i in range(n):
                blocks.append(_BasicBlock(cin, cout, 2 if stage and i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(x.mean(dim=(2, 3)))


def _weighted(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.BatchNorm2d | nn.Linear)]


def copy_weights(source: GraphNet, target: HandResNet) -> None:
    """Copy the graph's weights into the hand-written twin, layer by layer in order."""
    src = [source.layers[n] for n in source.graph.topological_order()]
    src = [m for m in src if isinstance(m, nn.Conv2d | nn.BatchNorm2d | nn.Linear)]
    dst = _weighted(target)
    if [type(m) for m in src] != [type(m) for m in dst]:
        raise RuntimeError("the graph and the hand-written network do not line up layer by layer")
    for s, d in zip(src, dst, strict=True):
        d.load_state_dict(s.state_dict())


def run(*, depth: int = 56, timing: PairTiming = TIMING) -> dict[str, Any]:
    """Time one training step (forward + backward) of both networks side by side.

    Example:
        >>> r = run(depth=8, timing=PairTiming(batch=2, rounds=1, iters=1, warmup=0))
        >>> r["max_output_gap"] < 1e-4, r["config"]["model"]
        (True, 'resnet8')
    """
    dev, memory_format, (x, y) = timing.prepare()
    graph = build("cifar_resnet", depth=depth, shortcut="A")
    net = GraphNet(graph).to(dev)
    hand = HandResNet(depth).to(dev)
    copy_weights(net, hand)
    net, hand = net.to(memory_format=memory_format), hand.to(memory_format=memory_format)
    net.eval(), hand.eval()
    with torch.no_grad():
        gap = check_same_outputs(net(x), hand(x), "graph and hand-written")
    samples = training_steps({"graph": (net, net), "hand": (hand, hand)}, x, y,
                             rounds=timing.rounds, iters=timing.iters, warmup=timing.warmup,
                             device=dev)  # fmt: skip
    graph_s, hand_s = median(samples["graph"]), median(samples["hand"])
    return {
        "benchmark": "executor_overhead",
        "config": {"model": f"resnet{depth}", **timing.config()},
        "provenance": environment(dev),
        "max_output_gap": gap,
        "graph_ms": graph_s * 1e3,
        "hand_ms": hand_s * 1e3,
        "ratio": graph_s / hand_s,
        "samples_ms": {k: [v * 1e3 for v in vs] for k, vs in samples.items()},
    }
