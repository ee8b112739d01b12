"""VGG (Simonyan & Zisserman) in torchvision's layout, VGG8 and VGG16 + DropIn (DropIn Table 6).

torchvision ``vgg11/13/16/19``: 3x3 convolutions (stride 1, pad 1) each followed by ReLU (and
BatchNorm before it in the ``_bn`` models), a 2x2 stride-2 max pool after each of 5 stages,
then fc6 4096, ReLU, dropout 0.5, fc7 4096, ReLU, dropout 0.5, fc8. At 224x224 torchvision's
adaptive 7x7 average pool is the identity, so it is left out (other input sizes give fc6 a
different fan-in than torchvision's). VGG16: 138,357,544 parameters, 15.47 GMACs.

VGG8 is the DropIn paper's name for one conv per stage (conv1_1 .. conv5_1), the network it
could train conventionally; VGG16 + DropIn joins every later conv of a stage to the one before.
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
    check_prob,
    check_shape,
    weights,
)

WIDTHS = (64, 128, 256, 512, 512)
CONVS_PER_STAGE = {
    8: (1, 1, 1, 1, 1),
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
"""Depth (weight layers, 3 of them fc) -> 3x3 convs in each of the 5 stages."""


def vgg(
    *,
    depth: int,
    num_classes: int = 1000,
    batchnorm: bool = False,
    dropin: bool = False,
    dropin_length: int = 60000,
    dropout: float = 0.5,
    in_shape: Sequence[int] | str = (3, 224, 224),
    init: str = "kaiming",
) -> NetGraph:
    """VGG-``depth`` for ``depth`` in 8, 11, 13, 16, 19 (torchvision's layout; 8 = DropIn's VGG8).

    Stage s (1..5) holds ``convs_j`` (64, 128, 256, 512, 512 filters, 3x3 pad 1), each
    followed by ``bns_j`` (when ``batchnorm``) and ``relus_j``, then ``pools`` (2x2 stride 2);
    then ``flatten``, ``fc6``, ``relu6``, ``drop6``, ``fc7``, ``relu7``, ``drop7``, ``fc8``.
    Parameters: VGG8 127,553,640 (DropIn Table 6, left), VGG11 132,863,336, VGG13 133,047,848,
    VGG16 138,357,544, VGG19 143,667,240 (torchvision's). ``dropin`` joins every
    ``convs_j`` (j >= 2) to the stage's previous layer as in :func:`vgg16_dropin`. Init
    ``"kaiming"`` is torchvision's (convs He-normal fan-out, fc N(0, 0.01), biases 0); other
    kinds apply to every layer (``"gaussian"``: std 0.01).

    Example:
        >>> from grownet.zoo import vgg
        >>> g = vgg(depth=16)
        >>> g.num_params(), g.shapes()["pool5"]
        (138357544, (512, 7, 7))
    """
    return _vgg(
        "vgg",
        depth=depth,
        num_classes=num_classes,
        batchnorm=batchnorm,
        dropin=dropin,
        dropin_length=dropin_length,
        dropout=dropout,
        in_shape=in_shape,
        init=init,
    )


def vgg16_dropin(
    *,
    dropin_length: int = 60000,
    num_classes: int = 1000,
    batchnorm: bool = False,
    dropout: float = 0.5,
    in_shape: Sequence[int] | str = (3, 224, 224),
    init: str = "kaiming",
) -> NetGraph:
    """VGG16 + DropIn: DropIn paper Table 6 (right); VGG8 grows into VGG16 during training.

    VGG16 (see :func:`vgg`) with ``dropins_2`` after ``relus_2`` in every stage (port
    ``new`` = ``relus_2``, the output of conv s_2 after its ReLU; port ``old`` = ``relus_1``)
    and, in stages 3-5, ``dropins_3`` (``new`` = ``relus_3``, ``old`` = ``dropins_2``, the
    previous layer's output); each conv and pool reads the DropIn before it. At q = 1 it
    computes exactly VGG8. Gradual DropIn over ``dropin_length`` iterations (the paper: 60,000
    at batch 96). 138,357,544 parameters, as VGG16.

    Example:
        >>> from grownet.zoo import vgg16_dropin
        >>> g = vgg16_dropin()
        >>> g.inputs("dropin3_3"), g.inputs("pool3")
        (['relu3_3', 'dropin3_2'], ['dropin3_3'])
    """
    return _vgg(
        "vgg16_dropin",
        depth=16,
        num_classes=num_classes,
        batchnorm=batchnorm,
        dropin=True,
        dropin_length=dropin_length,
        dropout=dropout,
        in_shape=in_shape,
        init=init,
    )


def _vgg(
    fn: str,
    *,
    depth: int,
    num_classes: int,
    batchnorm: bool,
    dropin: bool,
    dropin_length: int,
    dropout: float,
    in_shape: Sequence[int] | str,
    init: str,
) -> NetGraph:
    check_choice(fn, "depth", depth, CONVS_PER_STAGE)
    shape = check_shape(fn, in_shape)
    check_int(fn, "num_classes", num_classes)
    check_bool(fn, "batchnorm", batchnorm)
    check_bool(fn, "dropin", dropin)
    check_int(fn, "dropin_length", dropin_length)
    p = check_prob(fn, "dropout", dropout)
    check_init(fn, init)
    conv_w = weights(init)
    fc_w = weights("gaussian" if init == "kaiming" else init)
    b = Chain(shape)
    for s, (width, count) in enumerate(zip(WIDTHS, CONVS_PER_STAGE[depth], strict=True), 1):
        for j in range(1, count + 1):
            trunk = b.last
            b(f"conv{s}_{j}", "conv", out_channels=width, kernel_size=3, padding=1, **conv_w)
            if batchnorm:
                b(f"bn{s}_{j}", "batchnorm")
            b(f"relu{s}_{j}", "relu")
            if dropin and j > 1:
                b(f"dropin{s}_{j}", "dropin", [b.last, trunk], length=dropin_length)
        b(f"pool{s}", "maxpool", kernel_size=2, stride=2)
    b("flatten", "flatten")
    for k in (6, 7):
        b(f"fc{k}", "linear", out_features=4096, **fc_w)
        b(f"relu{k}", "relu")
        b(f"drop{k}", "dropout", p=p)
    b("fc8", "linear", out_features=num_classes, **fc_w)
    return b.finish()
