"""The ``grownet`` command.

User mistakes (an unknown model, a bad option, a malformed graph file) end with one line on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grownet.graph import GraphError, NetGraph


class UsageError(Exception):
    """A mistake the user can fix; printed as one line, exit code 2."""


def _parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``["depth=56", "shortcut=A"]`` -> ``{"depth": 56, "shortcut": "A"}``."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"option {item!r} is not KEY=VALUE (e.g. -o depth=56)")
        options[key.replace("-", "_")] = _parse_value(value)
    return options


def _load_graph(args: argparse.Namespace) -> NetGraph:
    from grownet.zoo import build

    if args.model.endswith(".json"):
        if not Path(args.model).exists():
            raise UsageError(f"graph file {args.model} does not exist")
        return NetGraph.from_json(args.model)
    return build(args.model, **parse_options(args.option))


def cmd_models(args: argparse.Namespace) -> None:
    from grownet.zoo import MODELS

    for name, builder in sorted(MODELS.items()):
        doc = (builder.__doc__ or "").strip().splitlines()
        print(f"{name:24s} {doc[0] if doc else ''}")


def cmd_graph(args: argparse.Namespace) -> None:
    graph = _load_graph(args)
    shapes = graph.validate()
    costs = graph.costs()
    if args.nodes:
        print(f"{'node':28s} {'op':15s} {'shape':18s} {'params':>12s} {'MACs':>14s}")
        for node in graph.topological_order():
            c = costs[node]
            shape = "x".join(map(str, shapes[node]))
            print(f"{node:28s} {graph.op(node):15s} {shape:18s} {c.params:12,d} {c.macs:14,d}")
    ops = Counter(graph.op(n) for n in graph.nodes)
    print(f"model       {args.model}")
    print(f"input       {graph.input_shape}  ->  output {shapes[graph.output_node]}")
    print(f"nodes       {len(graph)} ({', '.join(f'{k} {v}' for k, v in ops.most_common())})")
    print(f"weighted    {ops['conv'] + ops['linear']} layers (conv + linear)")
    print(f"parameters  {graph.num_params():,d}")
    print(f"MACs        {graph.macs():,d} per sample forward ({2 * graph.macs() / 1e9:.3f} GFLOP)")
    if args.json:
        graph.to_json(args.json)
        print(f"graph       written to {args.json}")


def cmd_bench(args: argparse.Namespace) -> None:
    from grownet.bench import executor_overhead

    result = executor_overhead.run(
        depth=args.depth,
        batch=args.batch,
        rounds=args.rounds,
        iters=args.iters,
        warmup=args.warmup,
        device=args.device,
        channels_last=args.channels_last,
    )
    p = result["provenance"]
    print(
        f"ResNet-{args.depth} forward+backward, batch {args.batch}, {p['device']} "
        f"({p['device_name']}), {p['threads']} threads, torch {p['torch']}"
    )
    print(f"  NetGraph executor   {result['graph_ms']:9.1f} ms/step (median of {args.rounds})")
    print(f"  hand-written module {result['hand_ms']:9.1f} ms/step")
    print(f"  ratio graph/hand    {result['ratio']:9.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"  written to {args.json}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grownet",
        description="Grow networks with gradual DropIn, thin them with depth and width dropout, "
        "and estimate the minimum depth and width your data needs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list the papers' networks in the zoo")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "graph",
        help="build a zoo network (or read a graph.json) and show its shape, parameters and MACs",
    )
    p.add_argument("model", help="a zoo model name (see `grownet models`) or a graph .json file")
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="builder option, repeatable (e.g. -o depth=56 -o shortcut=A)",
    )
    p.add_argument("--nodes", action="store_true", help="print a per-node table")
    p.add_argument("--json", metavar="PATH", help="write the graph as node-link JSON")
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser(
        "bench",
        help="time a ResNet as a NetGraph against a hand-written nn.Module, side by side",
    )
    p.add_argument("--depth", type=int, default=56, help="CIFAR ResNet depth 6n+2 (default 56)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    p.add_argument("--iters", type=int, default=3, help="steps per round")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per network first")
    p.add_argument("--device", default="cpu")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--json", metavar="PATH", help="write the result with its provenance")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (UsageError, GraphError, ValueError) as err:
        print(f"grownet: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("grownet: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
