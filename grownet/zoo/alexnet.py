"""Caffe's AlexNet and the DropIn paper's AlexNet (13 layers) + DropIn (Table 4).

Source: Caffe ``models/bvlc_alexnet/train_val.prototxt`` (227x227 crops): conv1 96@11x11
stride 4; ReLU; LRN (size 5, alpha 1e-4, beta 0.75, across channels); max pool 3/2; conv2
256@5x5 pad 2 group 2; ReLU; LRN; pool; conv3 384@3x3 pad 1; conv4 384@3x3 pad 1 group 2;
conv5 256@3x3 pad 1 group 2; pool; fc6 4096, fc7 4096 (each ReLU + dropout 0.5); fc8.
Weights Gaussian std 0.01 (fc6, fc7: 0.005); biases 0.1 on conv2, conv4, conv5, fc6, fc7 and 0
elsewhere. 60,965,224 parameters.

The DropIn paper used Caffe's "slightly modified AlexNet" from the ImageNet example, i.e.
``bvlc_reference_caffenet`` ("CaffeNet": pooling before normalization, which is why Table 4
says "maxpool + LocalNorm"; those biases are 1 instead of 0.1). ``variant="caffenet"`` builds
that; the parameter count is the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from grownet.graph import NetGraph
from grownet.zoo._common import (
    Chain,
    check_bool,
    check_choice,
    check_init,
    check_int,
    check_shape,
    weights,
)

VARIANTS = {"bvlc_alexnet": 0.1, "caffenet": 1.0}
"""Variant -> the constant bias of conv2, conv4, conv5, fc6 and fc7 in its prototxt."""

_LRN = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0, "region": "across"}
_POOL = {"kernel_size": 3, "stride": 2, "ceil_mode": True}  # Caffe rounds up (same at 227)
# (name, out_channels, kernel, stride, padding, grouped, bias is the variant's, pool + LRN after)
_CONVS = [
    ("1", 96, 11, 4, 0, False, False, True),
    ("2", 256, 5, 1, 2, True, True, True),
    ("3", 384, 3, 1, 1, False, False, False),
    ("4", 384, 3, 1, 1, True, True, False),
    ("5", 256, 3, 1, 1, True, True, False),
]
FC7_REGULARIZERS = ("dropout", "none", "dropin")


def _build(
    fn: str,
    *,
    duplicate: bool,
    dropin: bool,
    dropin_length: int,
    num_classes: int,
    groups: bool,
    variant: str,
    fc7_regularizer: str,
    in_shape: Sequence[int] | str,
    init: str,
) -> NetGraph:
    shape = check_shape(fn, in_shape)
    check_int(fn, "num_classes", num_classes)
    check_bool(fn, "groups", groups)
    one = VARIANTS[check_choice(fn, "variant", variant, VARIANTS)]
    check_choice(fn, "fc7_regularizer", fc7_regularizer, FC7_REGULARIZERS)
    check_init(fn, init)
    gaussian = init == "gaussian"

    def w(std: float, bias: float) -> dict[str, object]:
        return weights(init, std, bias if gaussian else 0.0)

    def norm_and_pool(k: str) -> None:
        steps = [("norm", "lrn", _LRN), ("pool", "maxpool", _POOL)]
        for prefix, op, params in steps if variant == "bvlc_alexnet" else steps[::-1]:
            b(f"{prefix}{k}", op, **params)

    b = Chain(shape)
    for k, out, kernel, stride, pad, grouped, biased, pooled in _CONVS:
        g = 2 if grouped and groups else 1
        bias = one if biased else 0.0
        if not duplicate:
            b(
                f"conv{k}",
                "conv",
                out_channels=out,
                kernel_size=kernel,
                stride=stride,
                padding=pad,
                groups=g,
                **w(0.01, bias),
            )
            b(f"relu{k}", "relu")
        else:
            # conv k_2 copies conv k_1's definition but with stride 1 and "same" padding, so
            # its output has conv k_1's shape and the two can meet in a DropIn.
            b(
                f"conv{k}_1",
                "conv",
                out_channels=out,
                kernel_size=kernel,
                stride=stride,
                padding=pad,
                groups=g,
                **w(0.01, bias),
            )
            trunk = b(f"relu{k}_1", "relu")
            b(
                f"conv{k}_2",
                "conv",
                out_channels=out,
                kernel_size=kernel,
                stride=1,
                padding=kernel // 2,
                groups=g,
                **w(0.01, bias),
            )
            b(f"relu{k}_2", "relu")
            if dropin:
                b(f"dropin{k}_2", "dropin", [f"relu{k}_2", trunk], length=dropin_length)
        if pooled:
            norm_and_pool(k)
    b("pool5", "maxpool", **_POOL)
    b("flatten", "flatten")
    b("fc6", "linear", out_features=4096, **w(0.005, one))
    b("relu6", "relu")
    fc6_out = b("drop6", "dropout", p=0.5)
    b("fc7", "linear", out_features=4096, **w(0.005, one))
    b("relu7", "relu")
    if fc7_regularizer == "dropout":
        b("drop7", "dropout", p=0.5)
    elif fc7_regularizer == "dropin":
        b("dropin7", "dropin", ["relu7", fc6_out], mode="regularizing", p=0.5)
    b("fc8", "linear", out_features=num_classes, **w(0.01, 0.0))
    return b.finish()


def alexnet(
    *,
    num_classes: int = 1000,
    groups: bool = True,
    variant: str = "bvlc_alexnet",
    fc7_regularizer: str = "dropout",
    in_shape: Sequence[int] | str = (3, 227, 227),
    init: str = "gaussian",
) -> NetGraph:
    """Caffe's AlexNet (``bvlc_alexnet``): 5 conv + 3 fc layers, 227x227 input.

    Nodes ``conv1, relu1, norm1, pool1, conv2, relu2, norm2, pool2, conv3, relu3, conv4,
    relu4, conv5, relu5, pool5, flatten, fc6, relu6, drop6, fc7, relu7, drop7, fc8``. Pools
    3x3 stride 2; LRN size 5, alpha 1e-4, beta 0.75 across channels. ``groups=False`` drops
    the two-GPU grouping of conv2/4/5 (62,378,344 parameters instead of 60,965,224).
    ``variant="caffenet"`` pools before each LRN and uses bias 1 where bvlc_alexnet uses 0.1
    (the network the DropIn paper trained; its Table 5 baseline is 58.0 %).
    ``fc7_regularizer`` reproduces DropIn paper Table 7: ``"dropout"`` (case 1, the
    original), ``"none"`` (case 2, no ``drop7``) or ``"dropin"`` (case 3: ``dropin7`` in
    regularizing mode with p = 0.5, port ``new`` = ``relu7``, ``old`` = ``drop6``). Weights:
    the prototxt's Gaussian fillers and constant biases; any other ``init`` replaces them (with
    bias 0).

    Example:
        >>> from grownet.zoo import alexnet
        >>> g = alexnet()
        >>> g.num_params(), g.shapes()["pool5"]
        (60965224, (256, 6, 6))
    """
    return _build(
        "alexnet",
        duplicate=False,
        dropin=False,
        dropin_length=1,
        num_classes=num_classes,
        groups=groups,
        variant=variant,
        fc7_regularizer=fc7_regularizer,
        in_shape=in_shape,
        init=init,
    )


def alexnet13(
    *,
    dropin: bool = True,
    dropin_length: int = 25000,
    num_classes: int = 1000,
    groups: bool = True,
    variant: str = "bvlc_alexnet",
    in_shape: Sequence[int] | str = (3, 227, 227),
    init: str = "gaussian",
) -> NetGraph:
    """AlexNet (13 layers) + DropIn: DropIn paper Table 4, every conv layer duplicated.

    Each AlexNet conv k becomes ``convk_1`` (the original) + ``reluk_1``, then ``convk_2`` +
    ``reluk_2``: the same filter count, size, grouping and fillers, but stride 1 and padding
    kernel // 2 so its output keeps ``convk_1``'s shape (conv1_2: 96@11x11 pad 5 on 55x55).
    ``dropink_2`` joins them: port ``new`` = ``reluk_2``, port ``old`` = ``reluk_1``; what
    follows reads the DropIn. 10 conv + 3 fc = 13 layers, 65,186,504 parameters. Gradual
    DropIn over ``dropin_length`` iterations (Table 5: 25,000 best at 62.2 %, then 75,000,
    150,000, 300,000); ``dropin=False`` is the plain AlexNet-13 that did not converge. Other
    options as :func:`alexnet` (the paper's runs correspond to ``variant="caffenet"``).

    Example:
        >>> from grownet.zoo import alexnet13
        >>> g = alexnet13()
        >>> g.inputs("dropin1_2"), g.shapes()["conv1_2"]
        (['relu1_2', 'relu1_1'], (96, 55, 55))
    """
    fn = "alexnet13"
    check_bool(fn, "dropin", dropin)
    check_int(fn, "dropin_length", dropin_length)
    return _build(
        fn,
        duplicate=True,
        dropin=dropin,
        dropin_length=dropin_length,
        num_classes=num_classes,
        groups=groups,
        variant=variant,
        fc7_regularizer="dropout",
        in_shape=in_shape,
        init=init,
    )
