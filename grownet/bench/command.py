"""``grownet bench``: the benchmarks as subcommands, each printing a table and writing JSON.

Every argument and the output directory are checked before any timing starts
(:mod:`grownet.bench.args`): a mistake costs one line and exit code 2, never minutes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grownet.bench.args import bench_device, check_count
from grownet.errors import BadValueError
from grownet.files import atomic_write_text, check_output_dir

if TYPE_CHECKING:
    from grownet.bench.timing import PairTiming

MODES_HELP = "skip (the branch is not computed: the papers' method) and/or mask (computed, times 0)"


def _device(args: argparse.Namespace) -> str:
    """The device to time on, after checking the depth and counts every benchmark takes (all
    time CIFAR ResNets), so a mistake is refused before the run directory is made."""
    if args.depth < 8 or (args.depth - 2) % 6:
        raise BadValueError(f"--depth {args.depth!r}: must be 6n+2 (8, 20, 56, 110, ...)")
    return _checked_timing_device(args)


def _checked_timing_device(args: argparse.Namespace) -> str:
    """The device, after checking the counts :func:`_timing_flags` gave."""
    check_count("--batch", args.batch, low=1)
    check_count("--iters", args.iters, low=1)
    check_count("--rounds", args.rounds, low=1)
    check_count("--warmup", args.warmup, low=0)
    return bench_device(args.device)


def _pair_timing(args: argparse.Namespace, device: str) -> PairTiming:
    """The side-by-side timing of two variants, from the flags (3 steps a round, 2 warm-up)."""
    from grownet.bench.timing import PairTiming

    return PairTiming(
        batch=args.batch, rounds=args.rounds, iters=args.iters or 3, device=device,
        warmup=args.warmup if args.warmup is not None else 2,
        channels_last=args.channels_last, seed=args.seed,
    )  # fmt: skip


def _run_dir(args: argparse.Namespace, default: str) -> Path:
    """The run directory, created and tried with a temporary file: the last check, so a
    refused argument leaves nothing behind."""
    return check_output_dir(Path(args.out or Path("runs") / default), label="--out")


def _common(p: argparse.ArgumentParser, *, depth: int, iters: str, rounds: int | None) -> None:
    p.add_argument("--depth", type=int, default=depth, help=f"CIFAR ResNet depth 6n+2 ({depth})")
    _timing_flags(p, batch=64, iters=iters, rounds=rounds)
    p.add_argument("--channels-last", action="store_true", help="channels-last tensors")


def _timing_flags(p: argparse.ArgumentParser, *, batch: int, iters: str, rounds: int | None
                  ) -> None:  # fmt: skip
    """The flags of every benchmark: how long, where, with which seed, written where."""
    p.add_argument("--batch", type=int, default=batch, help=f"mini-batch size ({batch})")
    p.add_argument(
        "--iters", type=int, default=None, help=f"timed iterations per variant ({iters})"
    )
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations per variant first")
    p.add_argument(
        "--rounds", type=int, default=rounds,
        help=f"interleaved rounds the iterations span ({rounds or 'one per iteration'})",
    )  # fmt: skip
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda[:N]")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and gate draws")
    p.add_argument("--out", metavar="DIR", default=None, help="run directory for bench.json")


def _write(result: dict[str, Any], run: Path) -> Path:
    """Write ``bench.json`` into the run directory (checked already), then its report."""
    from grownet.report import try_write_report

    run.mkdir(parents=True, exist_ok=True)  # again: it may have gone while timing ran
    path = run / "bench.json"
    atomic_write_text(path, json.dumps(result, indent=1) + "\n")
    try_write_report(run)  # a failure warns; the measurements are already saved
    return path


def cmd_executor(args: argparse.Namespace) -> None:
    from grownet.bench import executor_overhead

    device = _device(args)
    run = _run_dir(args, f"bench-executor-resnet{args.depth}")
    result = executor_overhead.run(depth=args.depth, timing=_pair_timing(args, device))
    p = result["provenance"]
    print(
        f"ResNet-{args.depth} forward+backward, batch {args.batch}, {p['device']} "
        f"({p['device_name']}), {p['threads']} threads, torch {p['torch']}"
    )
    print(f"  NetGraph executor   {result['graph_ms']:9.1f} ms/step (median of {args.rounds})")
    print(f"  hand-written module {result['hand_ms']:9.1f} ms/step")
    print(f"  ratio graph/hand    {result['ratio']:9.3f}")
    print(f"  written to {_write(result, run)}")


def cmd_gpt(args: argparse.Namespace) -> None:
    from grownet.bench import gpt

    for flag in ("layers", "width", "heads", "context", "vocab"):
        check_count(f"--{flag}", getattr(args, flag), low=1)
    if args.width % args.heads:
        raise BadValueError(f"--heads {args.heads}: must divide --width {args.width}")
    device = _checked_timing_device(args)
    run = _run_dir(args, f"bench-gpt-d{args.layers}-w{args.width}")
    timing = _pair_timing(args, device)
    result = gpt.run(depth=args.layers, width=args.width, heads=args.heads,
                     context=args.context, vocab=args.vocab, timing=timing)  # fmt: skip
    p = result["provenance"]
    print(f"{result['config']['model']} ({result['config']['params']:,} params) training step, "
          f"batch {args.batch} x {args.context} tokens, {p['device']} ({p['device_name']}), "
          f"{p['threads']} threads, torch {p['torch']}")  # fmt: skip
    print(f"  NetGraph executor        {result['graph_tokens_per_s']:11,.0f} tokens/s "
          f"({result['graph_ms']:.1f} ms/step, median of {args.rounds})")  # fmt: skip
    print(f"  hand-written nanoGPT-style {result['hand_tokens_per_s']:9,.0f} tokens/s "
          f"({result['hand_ms']:.1f} ms/step)")  # fmt: skip
    print(f"  speed graph/hand         {result['speed']:11.3f}")
    print(f"  last block mid-DropIn    {result['mixing_ms']:11.1f} ms/step "
          f"({100 * result['mixing_overhead']:+.1f} % over the graph without it)")  # fmt: skip
    print(f"  written to {_write(result, run)}")


def cmd_widening(args: argparse.Namespace) -> None:
    from grownet.bench import widening

    if not 0.0 <= args.q <= 1.0:
        raise BadValueError(f"--q {args.q!r}: must be in [0, 1] (the share of new units off)")
    if args.width < 2 or args.width % 2:
        raise BadValueError(f"--width {args.width!r}: must be an even number >= 2")
    device = _device(args)
    run = _run_dir(args, f"bench-widening-resnet{args.depth}")
    timing = _pair_timing(args, device)
    result = widening.run(depth=args.depth, width=args.width, q=args.q, timing=timing)
    p, c = result["provenance"], result["config"]
    print(
        f"ResNet-{args.depth} (projection shortcuts) widened {c['width_from']} -> "
        f"{c['width_to']}: forward+backward, batch {args.batch}, {p['device']} "
        f"({p['device_name']}), {p['threads']} threads, torch {p['torch']}"
    )
    print(f"  mid-widening (q = {args.q:g}, {c['width_dropin_nodes']} width DropIns) "
          f"{result['mixing_ms']:9.1f} ms/step (median of {args.rounds})")  # fmt: skip
    print(f"  final width, no mixing {' ' * 18}{result['final_ms']:9.1f} ms/step")
    verdict = "within" if result["within_budget"] else "OVER"
    print(f"  mixing overhead {100 * result['overhead']:+.1f} % ({verdict} the "
          f"{100 * result['budget']:.0f} % budget)")  # fmt: skip
    print(f"  written to {_write(result, run)}")


def cmd_depth(args: argparse.Namespace) -> None:
    from grownet.bench import depth

    depth.check_ratios(args.ratios if args.kind == "depth-dropout" else [args.p_last], args.modes)
    device = _device(args)
    gpu = device.startswith("cuda")
    iters = args.iters or (500 if gpu else 30)
    if args.rounds is not None and iters < args.rounds:
        raise BadValueError(
            f"--rounds {args.rounds}: must be at most --iters ({iters}): every round times at "
            "least one iteration"
        )
    run = _run_dir(args, f"bench-{args.kind}-resnet{args.depth}")
    timing = depth.Timing(
        batch=args.batch, rounds=args.rounds, device=device, channels_last=args.channels_last,
        seed=args.seed, iters=iters,
        warmup=args.warmup if args.warmup is not None else (20 if gpu else 3),
    )  # fmt: skip
    options: dict[str, Any] = {"timing": timing, "modes": tuple(args.modes), "progress": print}
    if args.kind == "depth-dropout":
        result = depth.run_depth_dropout(depth=args.depth, ratios=tuple(args.ratios), **options)
    else:
        result = depth.run_stochastic_depth(
            depth=args.depth, rules=tuple(args.rules), p_last=args.p_last, **options
        )
    print(depth.format_table(result))
    print(f"written to {_write(result, run)}")


def register(sub: Any) -> None:
    """Add ``bench`` and its subcommands to the top-level parser's subparsers."""
    bench = sub.add_parser(
        "bench", help="speed measured side by side in one run (executor overhead, depth dropout)"
    )
    kinds = bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")

    p = kinds.add_parser(
        "executor", help="a ResNet as a NetGraph vs the same ResNet as a hand-written nn.Module"
    )
    _common(p, depth=56, iters="3 per round", rounds=5)
    p.set_defaults(func=cmd_executor)

    p = kinds.add_parser(
        "gpt", help="the zoo's gpt as a NetGraph vs a hand-written nanoGPT-style module (tokens/s)"
    )
    _timing_flags(p, batch=12, iters="3 per round", rounds=7)
    p.set_defaults(channels_last=False)
    p.add_argument("--layers", type=int, default=4, help="transformer blocks (4)")
    p.add_argument("--width", type=int, default=128, help="residual width (128)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (4)")
    p.add_argument("--context", type=int, default=64, help="tokens per sequence (64)")
    p.add_argument("--vocab", type=int, default=65, help="vocabulary size (65)")
    p.set_defaults(func=cmd_gpt)

    p = kinds.add_parser(
        "widening",
        help="a step mid-width-growth (gradual width DropIn) vs the same net at its final width",
    )
    _common(p, depth=56, iters="3 per round", rounds=10)
    p.add_argument("--width", type=int, default=16, help="final width of the first stage (16)")
    p.add_argument("--q", type=float, default=0.5, help="share of the new units still off (0.5)")
    p.set_defaults(func=cmd_widening)

    p = kinds.add_parser(
        "depth-dropout",
        help="Guo & Gould's Table II: time per step vs dropout ratio, skip vs mask, vs theory",
    )
    _common(p, depth=56, iters="500 on GPU, 30 on CPU", rounds=None)
    p.add_argument("--ratios", type=float, nargs="+", default=[0.25, 0.5, 0.75],
                   help="dropout ratios in (0, 1); the baseline and p = 0 are always timed "
                   "(0.25 0.5 0.75)")  # fmt: skip
    p.add_argument("--modes", nargs="+", default=["skip", "mask"], choices=["skip", "mask"],
                   help=MODES_HELP)  # fmt: skip
    p.set_defaults(func=cmd_depth, kind="depth-dropout")

    p = kinds.add_parser(
        "stochastic-depth",
        help="Huang et al.: time per step with linear-decay or uniform survival vs constant depth",
    )
    _common(p, depth=110, iters="500 on GPU, 30 on CPU", rounds=None)
    p.add_argument(
        "--rules", nargs="+", default=["linear", "uniform"], choices=["linear", "uniform"],
        help="survival rules; constant depth is always timed (linear uniform)",
    )
    p.add_argument("--p-last", type=float, default=0.5, help="survival of the last unit (0.5)")
    p.add_argument("--modes", nargs="+", default=["skip", "mask"], choices=["skip", "mask"],
                   help=MODES_HELP)  # fmt: skip
    p.set_defaults(func=cmd_depth, kind="stochastic-depth")
