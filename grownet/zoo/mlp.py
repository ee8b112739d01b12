"""A multilayer perceptron: the starting point of a growth search on tabular data.

Hidden blocks are linear (+ BatchNorm) + ReLU, one per entry of ``widths``, then a linear
classifier. Flat features (``in_shape=(F,)``) go straight in; images (``(C, H, W)``) are
flattened first, so the same base runs on a CSV table and on 8x8 digits. Growth copies a
hidden block (``grownet.search.grow`` mirrors linear blocks as it does conv ones), and the width
sweep thins every hidden layer but the classifier.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from grownet.graph import NetGraph
from grownet.zoo._common import Chain, check_bool, check_init, check_int, check_prob, weights


def check_features(fn: str, value: Any) -> tuple[int, ...]:
    """An input shape of flat features ``(F,)`` or of images ``(C, H, W)``.

    Strings as the command line gives them work too: ``"13"``, ``"1x8x8"``.

    >>> check_features("mlp", "1x8x8"), check_features("mlp", [13])
    ((1, 8, 8), (13,))
    """
    shape: Any = value
    if isinstance(value, int) and not isinstance(value, bool):
        shape = (value,)
    elif isinstance(value, str):
        parts = [p for p in re.split(r"[x,\s()\[\]]+", value.strip()) if p]
        shape = [int(p) if p.isdigit() else p for p in parts]
    ok = (
        isinstance(shape, Sequence)
        and len(shape) in (1, 3)
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
    )
    if not ok:
        raise ValueError(
            f"{fn}: in_shape must be (features,) or (channels, height, width) > 0, got {value!r}"
        )
    return tuple(shape)


def mlp(
    *,
    widths: Sequence[int] = (64, 64),
    batchnorm: bool = True,
    dropout: float = 0.0,
    in_shape: Sequence[int] | str = (64,),
    num_classes: int = 10,
    init: str = "kaiming",
) -> NetGraph:
    """Hidden layers ``fc{i}`` of ``widths[i-1]`` units (+ ``bn{i}``) + ``relu{i}``, then ``out``.

    Images are flattened by a ``flatten`` node first. ``dropout`` > 0 adds ``drop{i}`` after
    each ReLU (growth positions stay the ReLUs). Growth inserts blocks after ``relu`` nodes;
    width sweeps thin the ``fc`` layers.

    Example:
        >>> from grownet.zoo import mlp
        >>> g = mlp(widths=(32, 16), in_shape=(13,), num_classes=3)
        >>> list(g.nodes)
        ['input', 'fc1', 'bn1', 'relu1', 'fc2', 'bn2', 'relu2', 'out', 'output']
        >>> g.shapes()["relu2"], g.num_params()
        ((16,), 1075)
    """
    fn = "mlp"
    if isinstance(widths, str | bytes) or not isinstance(widths, Sequence) or not widths:
        raise ValueError(f"{fn}: widths must be a non-empty list of layer widths, got {widths!r}")
    for width in widths:
        check_int(fn, "each width", width)
    check_bool(fn, "batchnorm", batchnorm)
    p = check_prob(fn, "dropout", dropout)
    shape = check_features(fn, in_shape)
    check_int(fn, "num_classes", num_classes)
    w = weights(check_init(fn, init))
    b = Chain(shape)
    if len(shape) == 3:
        b("flatten", "flatten")
    for i, width in enumerate(widths, 1):
        # BatchNorm's shift makes the linear bias redundant.
        b(f"fc{i}", "linear", out_features=width, bias=not batchnorm, **w)
        if batchnorm:
            b(f"bn{i}", "batchnorm")
        b(f"relu{i}", "relu")
        if p > 0:
            b(f"drop{i}", "dropout", p=p)
    b("out", "linear", out_features=num_classes, **w)
    return b.finish()
