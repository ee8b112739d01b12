"""What does running a language model as a graph cost? The zoo's ``gpt`` as a NetGraph vs a
hand-written nanoGPT-style module of the same shape.

Both hold the same weights (copied; outputs checked equal before timing) and a training step
(forward, cross-entropy over every position, backward) is timed in interleaved rounds in one
process, on one fixed batch of random token ids. Throughput is tokens per second. A third
variant holds the graph's last block half mixed in by gradual DropIn (q = 0.5): what a step
mid-growth costs over the same network grown.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from grownet.bench.timing import PairTiming, check_same_outputs, median, training_steps
from grownet.graph.executor import GraphNet
from grownet.graph.plan import StepPlan
from grownet.provenance import environment
from grownet.zoo import build


class _Block(nn.Module):
    """nanoGPT's block: pre-norm causal self-attention and a GELU MLP, no biases."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, bias=False)
        self.c_attn = nn.Linear(width, 3 * width, bias=False)
        self.attn_proj = nn.Linear(width, width, bias=False)
        self.ln_2 = nn.LayerNorm(width, bias=False)
        self.c_fc = nn.Linear(width, 4 * width, bias=False)
        self.mlp_proj = nn.Linear(4 * width, width, bias=False)
        self.heads = heads

    def forward(self, x: Tensor) -> Tensor:
        n, s, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (t.view(n, s, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).reshape(n, s, d))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class HandGPT(nn.Module):
    """A hand-written decoder-only transformer (nanoGPT's layout), head tied to the embedding."""

    def __init__(self, *, vocab: int, context: int, depth: int, width: int, heads: int) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Parameter(torch.zeros(context, width))
        self.blocks = nn.ModuleList(_Block(width, heads) for _ in range(depth))
        self.ln_f = nn.LayerNorm(width, bias=False)
        self.lm_head = nn.Linear(width, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx: Tensor) -> Tensor:
        x = self.wte(idx) + self.wpe
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def copy_weights(source: GraphNet, target: HandGPT) -> None:
    """Copy the graph's weights into the hand-written twin, node by node."""
    layers = source.layers
    with torch.no_grad():
        target.wte.weight.copy_(layers["tok"].weight)
        target.wpe.copy_(layers["pos"].weight)
        target.ln_f.weight.copy_(layers["ln_f"].weight)
        for i, block in enumerate(target.blocks, 1):
            block.ln_1.weight.copy_(layers[f"ln{i}_1"].weight)
            block.c_attn.weight.copy_(layers[f"attn{i}"].in_proj_weight)
            block.attn_proj.weight.copy_(layers[f"attn{i}"].out_proj.weight)
            block.ln_2.weight.copy_(layers[f"ln{i}_2"].weight)
            block.c_fc.weight.copy_(layers[f"fc{i}_1"].weight)
            block.mlp_proj.weight.copy_(layers[f"fc{i}_2"].weight)


def run(
    *,
    depth: int = 4,
    width: int = 128,
    heads: int = 4,
    context: int = 64,
    vocab: int = 65,
    timing: PairTiming | None = None,
) -> dict[str, Any]:
    """Time one training step of both language models side by side (defaults: nanoGPT's CPU
    baby GPT; ``timing.batch`` sequences of ``context`` tokens).

    Example:
        >>> t = PairTiming(batch=2, rounds=1, iters=1, warmup=0)
        >>> r = run(depth=1, width=16, heads=2, context=8, timing=t)
        >>> r["max_output_gap"] < 1e-4, r["config"]["model"]
        (True, 'gpt d1 w16 h2 ctx8')
    """
    timing = timing or PairTiming(batch=12)
    torch.manual_seed(timing.seed)
    dev = torch.device(timing.device)
    graph = build("gpt", depth=depth, width=width, heads=heads, in_shape=(context,),
                  num_classes=vocab, bias=False)  # fmt: skip
    net = GraphNet(graph).to(dev)
    hand = HandGPT(vocab=vocab, context=context, depth=depth, width=width, heads=heads).to(dev)
    copy_weights(net, hand)
    # the same network with its last block half mixed in by gradual DropIn (q = 0.5)
    mixing = GraphNet(build("gpt", depth=depth, width=width, heads=heads, in_shape=(context,),
                            num_classes=vocab, bias=False, dropin_blocks=1,
                            dropin_length=1000)).to(dev)  # fmt: skip
    mixing.load_state_dict(net.state_dict())
    mixing.set_plan(StepPlan(iteration=500))
    x = torch.randint(0, vocab, (timing.batch, context), device=dev)
    y = torch.randint(0, vocab, (timing.batch, context), device=dev)
    net.eval(), hand.eval()
    with torch.no_grad():
        gap = check_same_outputs(net(x), hand(x), "graph and hand-written")
    samples = training_steps({"graph": (net, net), "hand": (hand, hand),
                              "mixing": (mixing, mixing)}, x, y,
                             rounds=timing.rounds, iters=timing.iters, warmup=timing.warmup,
                             device=dev)  # fmt: skip
    graph_s, hand_s = median(samples["graph"]), median(samples["hand"])
    mixing_s = median(samples["mixing"])
    tokens = timing.batch * context
    return {
        "benchmark": "gpt_executor_overhead",
        "config": {
            "model": f"gpt d{depth} w{width} h{heads} ctx{context}",
            "vocab": vocab,
            "params": graph.num_params(),
            **timing.config(),
        },
        "provenance": environment(dev),
        "max_output_gap": gap,
        "graph_ms": graph_s * 1e3,
        "hand_ms": hand_s * 1e3,
        "graph_tokens_per_s": tokens / graph_s,
        "hand_tokens_per_s": tokens / hand_s,
        # throughput of the graph as a share of the hand-written module's (>= 1: as fast)
        "speed": hand_s / graph_s,
        "mixing_ms": mixing_s * 1e3,
        # a step with the last block mid-DropIn against the same network without the DropIn
        "mixing_overhead": mixing_s / graph_s - 1.0,
        # forward + backward, about three forwards
        "flops_per_token": 3 * 2 * graph.macs() / context,
        "samples_ms": {k: [v * 1e3 for v in vs] for k, vs in samples.items()},
    }
