"""A small VGG-style ConvNet: the default starting point of a growth search on small images.

Not from the papers: their networks are sized for 28x28 MNIST and larger. Digits are 8x8, so
LeNet's two 5x5 convolutions do not fit; this net uses 3x3 convolutions with padding, one
2x2 max pool per stage and a global average pool, so any depth and width fit any image size.
"""

from __future__ import annotations

from collections.abc import Sequence

from grownet.graph import NetGraph
from grownet.zoo._common import check_bool, check_int, start


def convnet(
    *,
    widths: Sequence[int] = (16, 32),
    convs: int = 1,
    batchnorm: bool = True,
    in_shape: Sequence[int] | str = (1, 8, 8),
    num_classes: int = 10,
    init: str = "kaiming",
) -> NetGraph:
    """Stages of ``convs`` 3x3 conv (+ BN) + ReLU at each width, a 2x2 max pool after each.

    Nodes of stage s, conv j: ``conv{s}_{j}``, ``bn{s}_{j}``, ``relu{s}_{j}``, then
    ``pool{s}``; after the stages ``gap`` (global average pool) and ``fc``. Growth inserts
    layers after the ``relu`` nodes; width sweeps thin the convs.

    Example:
        >>> from grownet.zoo import convnet
        >>> g = convnet(widths=(16, 32), convs=1)
        >>> g.shapes()["pool2"], g.num_params()
        ((32, 2, 2), 5178)
    """
    fn = "convnet"
    if isinstance(widths, str | bytes) or not isinstance(widths, Sequence) or not widths:
        raise ValueError(f"{fn}: widths must be a non-empty list of channel counts, got {widths!r}")
    for width in widths:
        check_int(fn, "each width", width)
    check_int(fn, "convs", convs)
    check_bool(fn, "batchnorm", batchnorm)
    b, w = start(fn, in_shape, num_classes, init)
    for s, width in enumerate(widths, 1):
        for j in range(1, convs + 1):
            b(f"conv{s}_{j}", "conv", out_channels=width, kernel_size=3, padding=1,
              bias=not batchnorm, **w)  # fmt: skip
            if batchnorm:
                b(f"bn{s}_{j}", "batchnorm")
            b(f"relu{s}_{j}", "relu")
        b(f"pool{s}", "maxpool", kernel_size=2, stride=2, ceil_mode=True)
    b("gap", "global_avgpool")
    b("fc", "linear", out_features=num_classes, **w)
    return b.finish()
