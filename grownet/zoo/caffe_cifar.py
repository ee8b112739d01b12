"""The DropIn paper's CIFAR-10 networks: the 3-layer Caffe net and its 11-layer expansion.

Sources: DropIn paper Table 2 and Sec. 4.2; NRL memorandum Table 2, Sec. 4.2 and Appendix C.
The paper started from Caffe's CIFAR-10 tutorial (``cifar10_full``) and states: every
convolution has Gaussian weights (std 0.01) and constant 0 bias, and is followed by a ReLU and
local normalization with local size 3, alpha 5e-5, beta 0.75, norm region WITHIN_CHANNEL.

Choices where the tables are ambiguous (documented per builder):

* Pool windows. The tables write every pool as "maxpool(2x2)", as they write AlexNet's 3x3
  stride-2 pools, so "(2x2)" reads as the stride. We use Caffe ``cifar10_full``'s window, 3x3
  stride 2 with Caffe's round-up (32 -> 16 -> 8 -> 4), and MAX everywhere as the tables say
  (``cifar10_full`` averages in pool2/pool3). ``pool_kernel=2`` gives literal 2x2 windows,
  with the same output sizes.
* Padding. 5x5 convolutions pad 2 and 3x3 ones pad 1, as ``cifar10_full``; so every layer
  entering a DropIn has the same size, as the paper says it kept them.
"""

from __future__ import annotations

from collections.abc import Sequence

from grownet.graph import NetGraph
from grownet.zoo._common import (
    check_bool,
    check_choice,
    check_int,
    start,
)

LRN = {"size": 3, "alpha": 5e-5, "beta": 0.75, "k": 1.0, "region": "within"}
"""The paper's local normalization: local size 3, alpha 5e-5, beta 0.75, WITHIN_CHANNEL."""

_C5 = {"out_channels": 32, "kernel_size": 5, "padding": 2}
_C3 = {"out_channels": 64, "kernel_size": 3, "padding": 1}


def _pool(kernel: int) -> dict[str, object]:
    return {"kernel_size": kernel, "stride": 2, "ceil_mode": True}


def cifar10_3layer(
    *,
    in_shape: Sequence[int] | str = (3, 32, 32),
    num_classes: int = 10,
    pool_kernel: int = 3,
    init: str = "gaussian",
) -> NetGraph:
    """The DropIn paper's 3-layer CIFAR-10 net (Table 2, left; 81.4 % in Table 3).

    ``conv1`` 32@5x5 pad 2, ``relu1``, ``pool1``, ``norm1``; ``conv2`` 32@5x5 pad 2,
    ``relu2``, ``pool2``, ``norm2``; ``conv3`` 64@3x3 pad 1, ``relu3``, ``pool3``;
    ``flatten``, ``fc`` 10. Pools are max, 3x3 stride 2 with Caffe's round-up (``pool_kernel``
    2 gives 2x2 windows; both give 32 -> 16 -> 8 -> 4); LRN is the paper's within-channel
    size 3, alpha 5e-5, beta 0.75. Weights Gaussian std 0.01, biases 0 (the paper's fillers;
    other ``init`` kinds replace the Gaussian). The table's conv3 is 3x3, not
    ``cifar10_full``'s 5x5. 56,810 parameters.

    Example:
        >>> from grownet.zoo import cifar10_3layer
        >>> g = cifar10_3layer()
        >>> g.num_params(), g.shapes()["pool3"]
        (56810, (64, 4, 4))
    """
    fn = "cifar10_3layer"
    b, w = start(fn, in_shape, num_classes, init)
    pool = _pool(check_choice(fn, "pool_kernel", pool_kernel, (2, 3)))
    for k in (1, 2):
        b(f"conv{k}", "conv", **_C5, **w)
        b(f"relu{k}", "relu")
        b(f"pool{k}", "maxpool", **pool)
        b(f"norm{k}", "lrn", **LRN)
    b("conv3", "conv", **_C3, **w)
    b("relu3", "relu")
    b("pool3", "maxpool", **pool)
    b("flatten", "flatten")
    b("fc", "linear", out_features=num_classes, **w)
    return b.finish()


def cifar10_11layer(
    *,
    dropin: bool = True,
    dropin_length: int = 16000,
    mxscale: float = 1.0,
    block_pools: bool = False,
    in_shape: Sequence[int] | str = (3, 32, 32),
    num_classes: int = 10,
    pool_kernel: int = 3,
    init: str = "gaussian",
) -> NetGraph:
    """The DropIn paper's 11-layer CIFAR-10 net + DropIn (Table 2, right; Table 3).

    Blocks k = 1..5: ``convk_1`` and ``convk_2``, each 32@5x5 pad 2 + ReLU (``reluk_j``) +
    LRN (``normk_j``), joined by ``dropink_2`` (port ``new`` = ``normk_2``, port ``old`` =
    ``normk_1``); the next block reads the DropIn. Then ``conv6_1`` 64@3x3 pad 1 + ``relu6_1``,
    ``pool6`` (max), ``flatten``, ``fc`` 10. Gradual DropIn with ``dropin_length``
    iterations (the paper: 8,000 / 16,000 / 24,000, best 16,000 at 82.3 %); at q = 1 the net
    runs ``convk_1`` only. ``dropin=False`` is the plain 11-layer net that would not train.
    ``mxscale`` caps the DropIn outputs' scaling, ``min(mxscale, 1/p)`` (memorandum Sec. 4.2,
    Fig. 4: 1 is no scaling, the default; 2 and 3 were compared).

    Pooling: the table's right column lists no pools inside the blocks, only the shared one
    after ``conv6_1``, so by default every conv runs at 32x32 and ``fc`` sees 64x16x16
    (415,466 parameters). ``block_pools=True`` instead keeps the 3-layer net's ``pool1`` and
    ``pool2`` after ``dropin1_2`` and ``dropin2_2`` (32 -> 16 -> 8 -> 4; 261,866 parameters).
    Both keep every DropIn's two inputs the same size. Pools, padding, LRN and init as in
    :func:`cifar10_3layer`.

    Example:
        >>> from grownet.zoo import cifar10_11layer
        >>> g = cifar10_11layer()
        >>> g.inputs("dropin3_2"), g.num_params()
        (['norm3_2', 'norm3_1'], 415466)
    """
    fn = "cifar10_11layer"
    check_bool(fn, "dropin", dropin)
    check_int(fn, "dropin_length", dropin_length)
    if isinstance(mxscale, bool) or not isinstance(mxscale, int | float) or not mxscale >= 1:
        raise ValueError(f"{fn}: mxscale must be a number >= 1 (1: no scaling), got {mxscale!r}")
    check_bool(fn, "block_pools", block_pools)
    b, w = start(fn, in_shape, num_classes, init)
    pool = _pool(check_choice(fn, "pool_kernel", pool_kernel, (2, 3)))
    for k in range(1, 6):
        for j in (1, 2):
            b(f"conv{k}_{j}", "conv", **_C5, **w)
            b(f"relu{k}_{j}", "relu")
            b(f"norm{k}_{j}", "lrn", **LRN)
        if dropin:
            b(f"dropin{k}_2", "dropin", [f"norm{k}_2", f"norm{k}_1"], length=dropin_length,
              mxscale=float(mxscale))  # fmt: skip
        if block_pools and k <= 2:
            b(f"pool{k}", "maxpool", **pool)
    b("conv6_1", "conv", **_C3, **w)
    b("relu6_1", "relu")
    b("pool6", "maxpool", **pool)
    b("flatten", "flatten")
    b("fc", "linear", out_features=num_classes, **w)
    return b.finish()
