"""``grownet import MODULE:CALLABLE``: the user's own ``nn.Module`` as a graph and its weights.

``CALLABLE()`` (with ``num_classes=N`` when ``--num-classes`` is given) makes the network;
:func:`grownet.graph.fx_import.import_module` converts it, all or nothing. The graph goes to
``-o graph.json`` and the weights, a plain state dict that ``torch.load(weights_only=True)``
reads, to ``graph.pt`` beside it; both are written temp-then-rename, after the conversion
succeeded, so a refused network leaves no file.

Example (``mynets.py`` in the working directory defines ``small()``, returning an
``nn.Sequential``)::

    grownet import mynets:small --input-shape 1,28,28 -o runs/small.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from grownet.errors import BadValueError, DataFileError
from grownet.files import atomic_save, check_output_dir, check_replaceable
from grownet.graph.base import is_graph_file


def input_shape(text: str) -> tuple[int, ...]:
    """``"3,32,32"`` as a shape; a bad one is a one-line error naming the flag.

    >>> input_shape("3,32,32")
    (3, 32, 32)
    >>> input_shape("3x32")
    Traceback (most recent call last):
    ...
    grownet.errors.BadValueError: --input-shape '3x32': give positive integers like 3,32,32 or 64
    """
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise BadValueError(f"--input-shape {text!r}: give positive integers like 3,32,32 or 64")
    return shape


def _imported_weights(path: Path) -> bool:
    """Whether ``path`` holds a state dict as ``grownet import`` writes them (the executor's
    ``layers.<node>.<tensor>`` keys), read without running anything in it."""
    import torch

    from grownet.train.checkpoint import read_torch_file

    try:
        state = read_torch_file(path, what="weights file", fix="")
    except (DataFileError, OSError):  # a file that cannot be read is not ours
        return False
    return isinstance(state, dict) and all(
        isinstance(k, str) and k.startswith("layers.") and isinstance(v, torch.Tensor)
        for k, v in state.items()
    )


def cmd_import(args: argparse.Namespace) -> None:
    """Convert, then write the graph and its weights."""
    import torch  # not for --help

    from grownet.graph.fx_import import import_callable

    out = Path(args.out)
    if out.suffix != ".json":
        raise BadValueError(f"-o {out}: the graph is JSON; give a path ending in .json")
    shape = input_shape(args.input_shape)
    if args.num_classes is not None and args.num_classes < 1:
        raise BadValueError(f"--num-classes must be >= 1, got {args.num_classes}")
    # before running the user's code: only a graph and weights grownet wrote are replaced
    weights = out.with_suffix(".pt")
    check_replaceable(out, label="-o", what="a grownet graph", ours=is_graph_file)
    check_replaceable(weights, label="the weights file", what="weights grownet imported",
                      ours=lambda p: is_graph_file(out) and _imported_weights(p))  # fmt: skip
    check_output_dir(out.parent, label="-o")
    graph, state = import_callable(args.ref, shape, args.num_classes)
    atomic_save(weights, lambda f: torch.save(state, f))
    graph.to_json(out)
    print(
        f"imported {args.ref}: {len(graph)} nodes, {graph.num_params():,} parameters "
        f"-> {out}, weights {weights}"
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``grownet import`` to the command line's subcommands."""
    p = sub.add_parser(
        "import",
        help="convert your own nn.Module (traced with torch.fx) into a grownet graph",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("ref", metavar="MODULE:CALLABLE", help="e.g. mynets:make_net or nets.py:Net")
    p.add_argument(
        "--input-shape", default="3,32,32", help="one sample's shape, C,H,W or F (3,32,32)"
    )
    p.add_argument(
        "--num-classes", type=int, default=None, help="passed to CALLABLE as num_classes="
    )
    p.add_argument("-o", "--out", required=True, help="graph JSON to write (weights: .pt beside)")
    p.set_defaults(func=cmd_import)
