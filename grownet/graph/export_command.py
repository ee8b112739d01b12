"""``grownet export RUN_OR_GRAPH -o OUT``: a run's network for use without grownet.

Writes into the folder OUT ``model.py`` (a class ``Net`` that imports only torch) with
``weights.pt`` (its state dict), ``model.pt2`` (a ``torch.export`` program, eval mode) and,
when ``onnx`` and ``onnxscript`` are installed, ``model.onnx``; see
:mod:`grownet.graph.export`.

Example::

    grownet export runs/digits -o runs/digits-export
"""

from __future__ import annotations

import argparse

_WHAT = {
    "model.py": "standalone nn.Module (imports only torch)",
    "weights.pt": "its state dict: Net().load_state_dict(torch.load(..., weights_only=True))",
    "model.pt2": "torch.export program, eval mode: torch.export.load(...).module()",
    "model.onnx": "ONNX",
}


def cmd_export(args: argparse.Namespace) -> None:
    from grownet.graph.export import export_model  # torch: not for --help

    result = export_model(
        args.source,
        args.out,
        weights=args.weights,
        iteration=args.iteration,
        overwrite=args.overwrite,
    )
    print(f"exported {result.origin} to {result.out}/")
    for name in result.files:
        print(f"  {name:11s} {_WHAT[name]}")
    if result.onnx_skipped:
        print(f"  {result.onnx_skipped}")
    shown = result.notes[:3]  # a deep ResNet has one per unit; model.py lists them all
    for note in shown:
        print(f"  eval-mode rule: {note}")
    if len(result.notes) > len(shown):
        print(f"  ... {len(result.notes) - len(shown)} more eval-mode rules, listed in model.py")
    checked = ", ".join(f"{name} {diff:.1e}" for name, diff in result.differences.items())
    print(f"  largest difference from grownet's executor on a random batch: {checked}")
    if result.fresh:
        print(
            "  no weights: the graph's fresh initialisation; give --weights FILE for trained ones"
        )


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``grownet export`` to the command line's subcommands."""
    p = sub.add_parser(
        "export",
        help="write a run's network as a standalone PyTorch module, torch.export and ONNX",
        description="Write into the folder OUT: model.py (a class Net that imports only torch) "
        "with weights.pt (its state dict), model.pt2 (a torch.export program, eval mode) and, "
        "when onnx and onnxscript are installed, model.onnx. Each is checked against grownet's "
        "executor on a random batch first. Growing DropIns and residual gates become their "
        "eval-mode rule.",
    )
    p.add_argument(
        "source",
        metavar="RUN_OR_GRAPH",
        help="a run directory (search, training run, study trial, recipe case), a checkpoint "
        "or a graph .json file",
    )
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="the folder to write")
    p.add_argument("--weights", metavar="FILE",
                   help="weights for a graph .json file: a state dict or a checkpoint.pt "
                   "(without: the graph's fresh initialisation)")  # fmt: skip
    p.add_argument("--iteration", type=int, metavar="N",
                   help="mix still-growing DropIns as at training iteration N (default: a "
                   "checkpoint's last step)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace the export files ({', '.join(_WHAT)}) in a non-empty OUT; "
                   "nothing else there is touched")  # fmt: skip
    p.set_defaults(func=cmd_export)
