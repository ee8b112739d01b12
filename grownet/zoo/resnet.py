"""Residual networks: He et al.'s CIFAR ResNet-(6n+2) and torchvision's ImageNet ResNets.

Every residual unit ends in a ``gated_add`` (port ``branch`` = the residual branch, port
``shortcut`` = the shortcut path) and a ReLU, so one graph serves a plain ResNet, depth dropout
(Guo & Gould: every gate drops with probability p, trainable 1x1 conv + BN + ReLU shortcuts)
and stochastic depth (Huang et al.: unit l of L drops with probability (l / L)(1 - p_L)).

Node ids follow torchvision's module names with "." -> "_": ``conv1, bn1, relu, [maxpool,]
layer{s}_{b}_conv1, layer{s}_{b}_bn1, ..., layer{s}_{b}_downsample_0/1, layer{s}_{b}_add,
layer{s}_{b}_relu, avgpool, fc`` (stages s from 1, blocks b from 0), so a torchvision state
dict key ``layer1.0.conv1.weight`` is node ``layer1_0_conv1``'s ``weight``.
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

CIFAR_SHORTCUTS = ("A", "identity", "avgpool", "B", "conv1x1")
IMAGENET_SHORTCUTS = ("B", "conv1x1")
SCHEDULES = (None, "linear", "uniform")
GATE_MODES = ("skip", "mask")
RESNET_INITS = ("kaiming", "msra", "xavier", "default")
IMAGENET_BLOCKS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


def drop_schedule(
    fn: str,
    *,
    stage_first: Sequence[bool],
    depth_dropout: float,
    stochastic_depth: str | None,
    p_last: float,
    exempt_downsampling: bool | None,
) -> tuple[str, list[float]]:
    """The gate kind and each unit's drop probability, units in order (l = 1..L).

    ``stage_first[i]`` marks the first unit of a stage: the units exempted from dropping when
    ``exempt_downsampling`` is on (by default it is for depth dropout, not stochastic depth).
    """
    p = check_prob(fn, "depth_dropout", depth_dropout)
    check_choice(fn, "stochastic_depth", stochastic_depth, SCHEDULES)
    p_last = check_prob(fn, "p_last", p_last, low_open=True, high_open=False)
    if exempt_downsampling is not None:
        check_bool(fn, "exempt_downsampling", exempt_downsampling)
    if p > 0 and stochastic_depth is not None:
        raise ValueError(
            f"{fn}: use depth_dropout or stochastic_depth, not both; got depth_dropout={p!r} "
            f"and stochastic_depth={stochastic_depth!r}"
        )
    total = len(stage_first)
    if stochastic_depth is None:
        kind, probs = "depth_dropout", [p] * total
        exempt = True if exempt_downsampling is None else exempt_downsampling
    else:
        kind = "stochastic_depth"
        if stochastic_depth == "linear":
            probs = [l / total * (1.0 - p_last) for l in range(1, total + 1)]  # noqa: E741
        else:
            probs = [1.0 - p_last] * total
        exempt = bool(exempt_downsampling)
    if exempt:
        probs = [0.0 if first else q for q, first in zip(probs, stage_first, strict=True)]
    return kind, probs


def _check_common(
    fn: str, num_classes: int, init: str, zero_init_residual: bool, mode: str
) -> None:
    check_int(fn, "num_classes", num_classes)
    check_init(fn, init, RESNET_INITS)
    check_bool(fn, "zero_init_residual", zero_init_residual)
    check_choice(fn, "mode", mode, GATE_MODES)


def _conv(b: Chain, node: str, out: int, kernel: int, stride: int, init: str, src: str) -> str:
    return b(
        node,
        "conv",
        [src],
        out_channels=out,
        kernel_size=kernel,
        stride=stride,
        padding=kernel // 2,
        bias=False,
        **weights(init),
    )


def _shortcut(
    b: Chain, p: str, x: str, cin: int, cout: int, stride: int, kind: str, init: str
) -> str:
    """The shortcut path of unit ``p`` from ``x``; returns its last node (``x`` if identity)."""
    if kind == "conv1x1":  # Guo & Gould: trainable on every unit
        _conv(b, f"{p}_shortcut_conv", cout, 1, stride, init, x)
        b(f"{p}_shortcut_bn", "batchnorm")
        return b(f"{p}_shortcut_relu", "relu")
    if stride == 1 and cin == cout:
        return x
    if kind == "B":  # projection on the units that change shape
        _conv(b, f"{p}_downsample_0", cout, 1, stride, init, x)
        return b(f"{p}_downsample_1", "batchnorm")
    out = x  # "A"/"identity": x[:, :, ::s, ::s]; "avgpool" (stochastic depth): s x s average
    if stride > 1:
        size = 1 if kind in ("A", "identity") else stride
        out = b(f"{p}_downsample_pool", "avgpool", [x], kernel_size=size, stride=stride)
    if cout > cin:
        out = b(f"{p}_downsample_pad", "channel_pad", [out], channels=cout)
    return out


def _unit(
    b: Chain,
    p: str,
    x: str,
    cin: int,
    planes: int,
    stride: int,
    *,
    bottleneck: bool,
    shortcut: str,
    init: str,
    zero_init: bool,
    gate: dict[str, object],
) -> tuple[str, int]:
    """One residual unit named ``p`` fed by ``x``; returns its output node and channels."""
    if bottleneck:  # torchvision v1.5: the stride sits on the 3x3 conv
        cout = 4 * planes
        convs = [(planes, 1, 1), (planes, 3, stride), (cout, 1, 1)]
    else:
        cout = planes
        convs = [(planes, 3, stride), (planes, 3, 1)]
    last = x
    for i, (out, kernel, s) in enumerate(convs, 1):
        _conv(b, f"{p}_conv{i}", out, kernel, s, init, last)
        final = i == len(convs)
        last = b(f"{p}_bn{i}", "batchnorm", zero_init=final and zero_init)
        if not final:
            last = b(f"{p}_relu{i}", "relu")
    short = _shortcut(b, p, x, cin, cout, stride, shortcut, init)
    b(f"{p}_add", "gated_add", [last, short], **gate)
    return b(f"{p}_relu", "relu"), cout


def _stages(
    b: Chain,
    x: str,
    cin: int,
    stages: Sequence[tuple[int, int, int]],
    *,
    kind: str,
    probs: Sequence[float],
    mode: str,
    bottleneck: bool,
    shortcut: str,
    init: str,
    zero_init: bool,
) -> str:
    """Stages of ``(planes, units, first stride)`` after ``x``; returns the last unit's output."""
    unit = 0
    for s, (planes, count, first_stride) in enumerate(stages, 1):
        for i in range(count):
            x, cin = _unit(
                b,
                f"layer{s}_{i}",
                x,
                cin,
                planes,
                first_stride if i == 0 else 1,
                bottleneck=bottleneck,
                shortcut=shortcut,
                init=init,
                zero_init=zero_init,
                gate={"kind": kind, "drop_prob": probs[unit], "mode": mode},
            )
            unit += 1
    return x


def _head(b: Chain, num_classes: int, init: str) -> NetGraph:
    b("avgpool", "global_avgpool")
    # torchvision leaves its fc at PyTorch's default init; Caffe-style inits apply everywhere.
    b("fc", "linear", out_features=num_classes, **weights("default" if init == "kaiming" else init))
    return b.finish()


def cifar_resnet(
    *,
    depth: int,
    shortcut: str = "A",
    depth_dropout: float = 0.0,
    stochastic_depth: str | None = None,
    p_last: float = 0.5,
    exempt_downsampling: bool | None = None,
    width: int = 16,
    num_classes: int = 10,
    in_shape: Sequence[int] | str = (3, 32, 32),
    init: str = "kaiming",
    zero_init_residual: bool = False,
    mode: str = "skip",
) -> NetGraph:
    """He et al.'s CIFAR ResNet-``depth``, depth = 6n + 2 (20, 32, 44, 56, 110, 1202, ...).

    ``conv1`` 16@3x3, ``bn1``, ``relu``; three stages of n basic units (16, 32, 64 filters;
    the first unit of stages 2 and 3 has stride 2), each ``conv1-bn1-relu1-conv2-bn2`` into a
    ``gated_add`` with the shortcut, then ``relu``; ``avgpool`` (global), ``fc``.
    ``width`` scales the filters (width, 2 width, 4 width).

    ``shortcut``: ``"A"`` (or ``"identity"``): identity, and on the 2 downsampling units
    ``avgpool`` 1x1 stride 2 (= x[:, :, ::2, ::2]) + zero ``channel_pad``, no parameters:
    ResNet-20/32/44/56/110 have 269,722 / 464,154 / 658,586 / 853,018 / 1,727,962
    parameters (He et al.: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M). ``"avgpool"``: the same with a
    2x2 average pool, as stochastic depth's transition units. ``"B"``: a 1x1 conv + BN
    projection on the downsampling units (+2,752 parameters: ResNet-110 1,730,714).
    ``"conv1x1"``: depth dropout's trainable 1x1 conv + BN + ReLU shortcut on every unit.

    Gates (``gated_add`` kind and drop_prob; ``mode`` "skip" or "mask" is passed on):
    ``depth_dropout=p`` drops every unit with probability p (kind "depth_dropout");
    ``stochastic_depth="linear"`` drops unit l of L = 3n with (l / L)(1 - ``p_last``),
    ``"uniform"`` every unit with 1 - ``p_last`` (kind "stochastic_depth"); neither gives a
    plain ResNet (kind "depth_dropout", drop_prob 0). ``exempt_downsampling`` keeps the first
    unit of every stage (3 units; Guo & Gould's "3 of 27 units performing downsampling" in
    ResNet-56, which their 34.6 % theoretical saving at p = 0.5 assumes) always on; default:
    on for depth dropout, off for stochastic depth (Huang et al. drop every unit).

    Init: ``"kaiming"`` is torchvision's (He-normal fan-out convs, default fc); ``"msra"``,
    ``"xavier"`` or ``"default"`` apply to every conv and the fc. ``zero_init_residual``
    zeroes each unit's last BN scale. Building ResNet-1202 takes well under a second.

    Example:
        >>> from grownet.zoo import cifar_resnet
        >>> g = cifar_resnet(depth=56)
        >>> g.num_params(), g.inputs("layer2_0_add")
        (853018, ['layer2_0_bn2', 'layer2_0_downsample_pad'])
        >>> g = cifar_resnet(depth=110, stochastic_depth="linear")
        >>> g.spec("layer3_17_add").params["drop_prob"]
        0.5
    """
    fn = "cifar_resnet"
    check_int(fn, "depth", depth, minimum=8)
    if (depth - 2) % 6:
        raise ValueError(f"{fn}: depth must be 6n + 2 (20, 32, 44, 56, 110, ...), got {depth!r}")
    n = (depth - 2) // 6
    check_choice(fn, "shortcut", shortcut, CIFAR_SHORTCUTS)
    check_int(fn, "width", width)
    shape = check_shape(fn, in_shape)
    _check_common(fn, num_classes, init, zero_init_residual, mode)
    kind, probs = drop_schedule(
        fn,
        stage_first=[i == 0 for _ in range(3) for i in range(n)],
        depth_dropout=depth_dropout,
        stochastic_depth=stochastic_depth,
        p_last=p_last,
        exempt_downsampling=exempt_downsampling,
    )
    b = Chain(shape)
    _conv(b, "conv1", width, 3, 1, init, b.last)
    b("bn1", "batchnorm")
    x = b("relu", "relu")
    _stages(
        b,
        x,
        width,
        [(width, n, 1), (2 * width, n, 2), (4 * width, n, 2)],
        kind=kind,
        probs=probs,
        mode=mode,
        bottleneck=False,
        shortcut=shortcut,
        init=init,
        zero_init=zero_init_residual,
    )
    return _head(b, num_classes, init)


def imagenet_resnet(
    *,
    depth: int,
    num_classes: int = 1000,
    shortcut: str = "B",
    depth_dropout: float = 0.0,
    stochastic_depth: str | None = None,
    p_last: float = 0.5,
    exempt_downsampling: bool | None = None,
    in_shape: Sequence[int] | str = (3, 224, 224),
    init: str = "kaiming",
    zero_init_residual: bool = False,
    mode: str = "skip",
) -> NetGraph:
    """torchvision's ResNet-``depth`` for ImageNet, depth in 18, 34, 50, 101, 152.

    ``conv1`` 64@7x7 stride 2 pad 3, ``bn1``, ``relu``, ``maxpool`` 3x3 stride 2 pad 1; four
    stages (64, 128, 256, 512 planes; stride 2 on the first unit of stages 2-4) of basic
    units (18, 34: 3x3-3x3) or bottleneck units (50, 101, 152: 1x1-3x3-1x1, 4x expansion,
    stride on the 3x3 conv as torchvision's v1.5); ``avgpool``, ``fc``. Shortcut ``"B"``
    (torchvision): identity, or ``downsample_0`` 1x1 conv + ``downsample_1`` BN where the
    shape changes; ``"conv1x1"``: depth dropout's 1x1 conv + BN + ReLU on every unit.
    Parameters equal torchvision's: 11,689,512 / 21,797,672 / 25,557,032 / 44,549,160 /
    60,192,808; node ids are torchvision's module names with "_" for ".". Gate options
    (``depth_dropout``, ``stochastic_depth``, ``p_last``, ``exempt_downsampling`` = the first
    unit of each of the 4 stages, ``mode``), ``init`` and ``zero_init_residual`` as
    :func:`cifar_resnet`.

    Example:
        >>> from grownet.zoo import imagenet_resnet
        >>> g = imagenet_resnet(depth=50)
        >>> g.num_params(), g.shapes()["layer4_2_relu"]
        (25557032, (2048, 7, 7))
    """
    fn = "imagenet_resnet"
    check_choice(fn, "depth", depth, IMAGENET_BLOCKS)
    check_choice(fn, "shortcut", shortcut, IMAGENET_SHORTCUTS)
    shape = check_shape(fn, in_shape)
    _check_common(fn, num_classes, init, zero_init_residual, mode)
    block, counts = IMAGENET_BLOCKS[depth]
    kind, probs = drop_schedule(
        fn,
        stage_first=[i == 0 for count in counts for i in range(count)],
        depth_dropout=depth_dropout,
        stochastic_depth=stochastic_depth,
        p_last=p_last,
        exempt_downsampling=exempt_downsampling,
    )
    b = Chain(shape)
    b(
        "conv1",
        "conv",
        out_channels=64,
        kernel_size=7,
        stride=2,
        padding=3,
        bias=False,
        **weights(init),
    )
    b("bn1", "batchnorm")
    b("relu", "relu")
    x = b("maxpool", "maxpool", kernel_size=3, stride=2, padding=1)
    _stages(
        b,
        x,
        64,
        [
            (planes, count, 1 if s == 0 else 2)
            for s, (planes, count) in enumerate(zip((64, 128, 256, 512), counts, strict=True))
        ],
        kind=kind,
        probs=probs,
        mode=mode,
        bottleneck=block == "bottleneck",
        shortcut=shortcut,
        init=init,
        zero_init=zero_init_residual,
    )
    return _head(b, num_classes, init)
