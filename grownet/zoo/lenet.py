"""Caffe's LeNet and the DropIn paper's LeNet(2N) (Smith, Hand & Doster, Table 1).

Caffe's ``examples/mnist/lenet_train_test.prototxt``: conv1 20@5x5, max pool 2/2, conv2 50@5x5,
max pool 2/2, ip1 500, ReLU, ip2 10; Xavier weight filler and constant 0 bias everywhere; no
ReLU after the convolutions. 431,080 parameters on 1x28x28 MNIST.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from grownet.graph import NetGraph
from grownet.zoo._common import (
    check_bool,
    check_choice,
    check_int,
    start,
)

_POOL = {"kernel_size": 2, "stride": 2, "ceil_mode": True}  # Caffe rounds pooled sizes up


def lenet(
    *,
    in_shape: Sequence[int] | str = (1, 28, 28),
    num_classes: int = 10,
    init: str = "xavier",
) -> NetGraph:
    """Caffe's LeNet for MNIST: conv1 20@5x5, pool, conv2 50@5x5, pool, ip1 500, ReLU, ip2.

    Nodes: ``input, conv1, pool1, conv2, pool2, flatten, ip1, relu1, ip2, output`` (Caffe's
    names). Weights use Caffe's Xavier filler (uniform ±sqrt(3/fan_in)), biases 0; ``init``
    may be ``"xavier"``, ``"msra"``, ``"kaiming"``, ``"gaussian"`` (std 0.01) or
    ``"default"`` (PyTorch's). 431,080 parameters at 1x28x28.

    Example:
        >>> from grownet.zoo import lenet
        >>> g = lenet()
        >>> g.num_params(), g.shapes()["pool2"]
        (431080, (50, 4, 4))
    """
    fn = "lenet"
    b, w = start(fn, in_shape, num_classes, init)
    b("conv1", "conv", out_channels=20, kernel_size=5, **w)
    b("pool1", "maxpool", **_POOL)
    b("conv2", "conv", out_channels=50, kernel_size=5, **w)
    b("pool2", "maxpool", **_POOL)
    b("flatten", "flatten")
    b("ip1", "linear", out_features=500, **w)
    b("relu1", "relu")
    b("ip2", "linear", out_features=num_classes, **w)
    return b.finish()


def _unit_lengths(fn: str, value: int | Sequence[int], *, units: int) -> Iterator[int]:
    """One DropIn length per unit, from one length or a list of ``units`` of them."""
    if isinstance(value, int | str | bytes) or not isinstance(value, Sequence):
        check_int(fn, "dropin_length", value)
        return iter([value] * units)
    if len(value) != units:
        raise ValueError(
            f"{fn}: dropin_length as a list needs one length per DropIn unit ({units} for "
            f"this n), got {len(value)}: {list(value)!r}"
        )
    for length in value:
        check_int(fn, "each dropin_length", length)
    return iter(list(value))


def lenet2n(
    *,
    n: int,
    dropin: bool = True,
    dropin_length: int | Sequence[int] = 2500,
    dropin_layout: str = "sample",
    conv_relu: bool = False,
    in_shape: Sequence[int] | str = (1, 28, 28),
    num_classes: int = 10,
    init: str = "xavier",
) -> NetGraph:
    """LeNet(2N) (+ DropIn): DropIn paper Table 1, 2N convolutions instead of LeNet's 2.

    Stage k (k = 1: 20 filters, k = 2: 50) is ``convk_1`` (5x5, as LeNet's) followed by
    ``convk_2 .. convk_N`` (3x3, padding 1, so every output keeps ``convk_1``'s size), then a
    2x2 max pool ``poolk``; then ``fc3`` 500, ``relu3``, ``fc4``. With ``dropin`` each
    ``convk_j`` (j >= 2) is joined by ``dropink_j``: port ``new`` = ``convk_j``'s output, port
    ``old`` = the previous layer's output (``convk_1`` for j = 2, else ``dropink_(j-1)``), and
    ``convk_(j+1)`` reads ``dropink_j``. At q = 1 every DropIn passes its old input, so the
    net starts as LeNet and the new layers are mixed in over ``dropin_length`` iterations
    (gradual mode; the paper used 2,500 and 7,500 for N = 5, 15, 25). ``dropin=False`` gives
    the plain LeNet(2N) the paper could not train; ``n=1`` is LeNet (with these node names).
    ``dropin_layout`` "sample" applies the old-path prefix per sample (the paper's equations),
    "blob" over the whole N x C x H x W batch (the memorandum's Caffe code).
    ``conv_relu`` adds ``reluk_j`` after every conv (off, as in Caffe's LeNet); the DropIn
    then mixes the ReLU outputs. ``dropin_length`` may also be a list, one length per DropIn
    unit in node order (``dropin1_2 .. dropin1_N, dropin2_2 ..``): the paper's future work of
    "tailored DropIn lengths for different DropIn layers", which a study can sample.
    Parameters: 431,080 + 26,170 (N - 1).

    Example:
        >>> from grownet.zoo import lenet2n
        >>> g = lenet2n(n=5)
        >>> g.inputs("dropin1_3"), g.num_params()
        (['conv1_3', 'dropin1_2'], 535760)
    """
    fn = "lenet2n"
    check_int(fn, "n", n)
    check_bool(fn, "dropin", dropin)
    lengths = _unit_lengths(fn, dropin_length, units=2 * (n - 1))
    check_choice(fn, "dropin_layout", dropin_layout, ("sample", "blob"))
    check_bool(fn, "conv_relu", conv_relu)
    b, w = start(fn, in_shape, num_classes, init)
    for stage, width in ((1, 20), (2, 50)):
        for j in range(1, n + 1):
            trunk = b.last
            size = {"kernel_size": 5} if j == 1 else {"kernel_size": 3, "padding": 1}
            b(f"conv{stage}_{j}", "conv", out_channels=width, **size, **w)
            if conv_relu:
                b(f"relu{stage}_{j}", "relu")
            if dropin and j > 1:
                b(f"dropin{stage}_{j}", "dropin", [b.last, trunk], length=next(lengths),
                  layout=dropin_layout)  # fmt: skip
        b(f"pool{stage}", "maxpool", **_POOL)
    b("flatten", "flatten")
    b("fc3", "linear", out_features=500, **w)
    b("relu3", "relu")
    b("fc4", "linear", out_features=num_classes, **w)
    return b.finish()
