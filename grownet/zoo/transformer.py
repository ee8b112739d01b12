"""Pre-norm transformers: ``gpt`` (a character-level language model) and ``vit`` (a vision
transformer for small images), built from the graph's own ops so that growth, depth dropout
and the ratio sweeps reach their blocks.

Block ``i`` (from 1) is two residual units over the token stream ``x``::

    x = x + attn{i}(ln{i}_1(x))                  # node add{i}_1
    x = x + fc{i}_2(gelu{i}(fc{i}_1(ln{i}_2(x))))  # node add{i}_2

The residual adds are plain ``add`` nodes (``gated_add`` under depth dropout or stochastic
depth, which then skip a dropped branch for real), so the depth-dropout sweep finds every unit,
and a block inserted by growth is mixed in the same way. ``gpt`` ends in a final norm and a head
whose weight is the token embedding's table (``tie=True``, as GPT-2 and nanoGPT do); its output
is (context, vocabulary) logits per sample, one prediction per position. Initialisation
follows GPT-2: weights N(0, 0.02), the two projections that end a residual branch scaled by
1/sqrt(2 depth) so the stream's variance does not grow with depth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from grownet.graph import NetGraph
from grownet.zoo._common import Chain, check_bool, check_choice, check_int, check_prob, check_shape
from grownet.zoo.resnet import drop_schedule

NORMS = {"layer": "layer_norm", "rms": "rms_norm"}
STD = 0.02


def _check_width(fn: str, width: Any, heads: Any) -> None:
    check_int(fn, "width", width)
    check_int(fn, "heads", heads)
    if width % heads:
        raise ValueError(f"{fn}: heads must divide width={width}, got heads={heads}")


def _norm(b: Chain, node: str, norm: str, bias: bool) -> str:
    return b(node, NORMS[norm], **({"bias": bias} if norm == "layer" else {}))


def block(
    b: Chain,
    i: int,
    *,
    width: int,
    heads: int,
    mlp_ratio: float,
    causal: bool,
    norm: str,
    bias: bool,
    dropout: float,
    depth: int,
    gates: Sequence[dict[str, Any] | None] = (None, None),
) -> str:
    """Append pre-norm block ``i`` after ``b.last``; returns its last node (``add{i}_2``).
    ``gates``: each unit's ``gated_add`` parameters (branch first), or None for a plain add."""
    stream = b.last
    linear = {"bias": bias, "init": "gaussian", "init_std": STD}
    # GPT-2's scaled init of the projections that end a residual branch
    out = {**linear, "init_std": STD / math.sqrt(2 * depth)}
    _norm(b, f"ln{i}_1", norm, bias)
    b(f"attn{i}", "attention", heads=heads, p=dropout, bias=bias, causal=causal)
    _residual(b, f"add{i}_1", stream, gates[0])
    stream = b.last
    _norm(b, f"ln{i}_2", norm, bias)
    b(f"fc{i}_1", "linear", out_features=round(mlp_ratio * width), **linear)
    b(f"gelu{i}", "activation", kind="gelu")
    b(f"fc{i}_2", "linear", out_features=width, **out)
    if dropout:
        b(f"drop{i}", "dropout", p=dropout)
    return _residual(b, f"add{i}_2", stream, gates[1])


def _residual(b: Chain, node: str, stream: str, gate: dict[str, Any] | None) -> str:
    if gate is None:
        return b(node, "add", inputs=[stream, b.last])
    return b(node, "gated_add", inputs=[b.last, stream], **gate)


def _gates(
    fn: str, depth: int, depth_dropout: Any, stochastic_depth: Any, p_last: Any
) -> list[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """Each block's two units' gates: plain adds unless ``depth_dropout`` or
    ``stochastic_depth`` asks (as :func:`grownet.zoo.resnet.drop_schedule` gives them over the
    ``2 depth`` units, none exempt)."""
    if not depth_dropout and stochastic_depth is None:
        check_prob(fn, "depth_dropout", depth_dropout)
        return [(None, None)] * depth
    kind, probs = drop_schedule(fn, stage_first=[False] * (2 * depth), depth_dropout=depth_dropout,
                                stochastic_depth=stochastic_depth, p_last=p_last,
                                exempt_downsampling=False)  # fmt: skip
    gates = [{"kind": kind, "drop_prob": q, "mode": "skip"} for q in probs]
    return [(gates[2 * i], gates[2 * i + 1]) for i in range(depth)]


def _check_common(
    fn: str, depth: Any, width: Any, heads: Any, mlp_ratio: Any, norm: Any, bias: Any,
    dropout: Any,
) -> None:  # fmt: skip
    check_int(fn, "depth", depth, minimum=0)
    _check_width(fn, width, heads)
    ok = not isinstance(mlp_ratio, bool) and isinstance(mlp_ratio, int | float) and mlp_ratio > 0
    if not ok or round(mlp_ratio * width) < 1:
        raise ValueError(f"{fn}: mlp_ratio must be a number > 0 giving >= 1 unit, "
                         f"got {mlp_ratio!r}")  # fmt: skip
    check_choice(fn, "norm", norm, NORMS)
    check_bool(fn, "bias", bias)
    check_prob(fn, "dropout", dropout)


def gpt(
    *,
    depth: int = 4,
    width: int = 128,
    heads: int = 4,
    mlp_ratio: float = 4.0,
    in_shape: Sequence[int] = (64,),
    num_classes: int = 65,
    norm: str = "layer",
    bias: bool = False,
    dropout: float = 0.0,
    tie: bool = True,
    dropin_blocks: int = 0,
    dropin_length: int = 1000,
    depth_dropout: float = 0.0,
    stochastic_depth: str | None = None,
    p_last: float = 0.5,
) -> NetGraph:
    """A decoder-only language model (GPT), pre-norm, its head tied to the token table.

    It predicts each of ``in_shape = (context,)`` positions (the context a text dataset
    gives) over ``num_classes`` tokens.

    Nodes: ``tok`` (token embedding), ``pos`` (learned position embedding, added), blocks
    ``1..depth`` (see the module), ``ln_f``, ``head``. The defaults are nanoGPT's CPU "baby
    GPT" for Tiny Shakespeare (4 layers, 4 heads, 128 wide, context 64). ``dropin_blocks``:
    the last that many blocks are joined by gradual DropIn (``dropin{i}``: new = the block's
    output, old = the stream it reads) over ``dropin_length`` iterations, the DropIn paper's
    way of growing a trained shallower model into this one. ``depth_dropout = p`` or
    ``stochastic_depth = "linear" | "uniform"`` (with ``p_last``, as ``cifar_resnet`` takes
    them) make every residual add a ``gated_add`` that skips its branch for real when it is
    dropped (unit l of the 2 depth units: probability (l / 2 depth)(1 - p_last) when linear).

    Example:
        >>> from grownet.zoo import gpt
        >>> g = gpt(depth=2, width=32, heads=2, in_shape=(16,), num_classes=65)
        >>> g.shapes()["head"], g.num_params()
        ((16, 65), 27328)
    """
    fn = "gpt"
    _check_common(fn, depth, width, heads, mlp_ratio, norm, bias, dropout)
    check_int(fn, "num_classes", num_classes)
    check_bool(fn, "tie", tie)
    check_int(fn, "dropin_blocks", dropin_blocks, minimum=0)
    check_int(fn, "dropin_length", dropin_length)
    if dropin_blocks > depth:
        raise ValueError(f"{fn}: dropin_blocks must be at most depth={depth}, "
                         f"got {dropin_blocks}")  # fmt: skip
    ok = isinstance(in_shape, Sequence) and len(in_shape) == 1
    context = in_shape[0] if ok else None
    if not ok or isinstance(context, bool) or not isinstance(context, int) or context < 1:
        raise ValueError(f"{fn}: in_shape must be (context,) with context >= 1 tokens, "
                         f"got {in_shape!r}")  # fmt: skip
    b = Chain((context,))
    b("tok", "embedding", num_embeddings=num_classes, out_features=width, init_std=STD)
    b("pos", "param", shape=[context, width], mode="add", init_std=STD)
    if dropout:
        b("drop0", "dropout", p=dropout)
    shape = {"width": width, "heads": heads, "mlp_ratio": mlp_ratio, "norm": norm, "bias": bias}
    gates = _gates(fn, depth, depth_dropout, stochastic_depth, p_last)
    for i in range(1, depth + 1):
        stream = b.last
        block(b, i, causal=True, dropout=dropout, depth=depth, gates=gates[i - 1], **shape)
        if i > depth - dropin_blocks:
            b(f"dropin{i}", "dropin", inputs=[b.last, stream], mode="gradual",
              length=dropin_length)  # fmt: skip
    _norm(b, "ln_f", norm, bias)
    b("head", "linear", out_features=num_classes, bias=False, init="gaussian", init_std=STD,
      tie="tok" if tie else None)  # fmt: skip
    return b.finish()


def vit(
    *,
    patch: int = 4,
    depth: int = 4,
    width: int = 64,
    heads: int = 4,
    mlp_ratio: float = 2.0,
    in_shape: Sequence[int] | str = (1, 28, 28),
    num_classes: int = 10,
    norm: str = "layer",
    bias: bool = True,
    dropout: float = 0.0,
    depth_dropout: float = 0.0,
    stochastic_depth: str | None = None,
    p_last: float = 0.5,
) -> NetGraph:
    """A vision transformer (ViT) for small images, pre-norm, classifying its class token.

    ``patch`` x ``patch`` patches are embedded by a strided conv, a class token prepended,
    learned positions added, then blocks ``1..depth``, ``ln_f``, and the class token's features
    (``cls_out``) into the ``head``.

    The patch must tile the image: 28x28 takes patch 2, 4, 7, 14; 32x32 and 8x8 take powers of 2.
    ``depth_dropout``, ``stochastic_depth`` and ``p_last`` gate the residual adds as in ``gpt``.

    Example:
        >>> from grownet.zoo import vit
        >>> g = vit(patch=4, depth=1, width=16, heads=2, in_shape=(1, 8, 8))
        >>> g.shapes()["tokens"], g.shapes()["head"]
        ((5, 16), (10,))
    """
    fn = "vit"
    _check_common(fn, depth, width, heads, mlp_ratio, norm, bias, dropout)
    check_int(fn, "num_classes", num_classes)
    check_int(fn, "patch", patch)
    c, h, w = check_shape(fn, in_shape)
    if h % patch or w % patch:
        raise ValueError(f"{fn}: patch must divide the image's {h}x{w} pixels, got {patch}")
    n = (h // patch) * (w // patch)
    b = Chain((c, h, w))
    b("patches", "conv", out_channels=width, kernel_size=patch, stride=patch, init="default")
    b("flat", "reshape", shape=[width, n])
    b("seq", "permute", dims=[1, 0])
    b("cls", "param", shape=[1, width], mode="prepend", init_std=STD)
    b("tokens", "param", shape=[n + 1, width], mode="add", init_std=STD)
    shape = {"width": width, "heads": heads, "mlp_ratio": mlp_ratio, "norm": norm, "bias": bias}
    gates = _gates(fn, depth, depth_dropout, stochastic_depth, p_last)
    for i in range(1, depth + 1):
        block(b, i, causal=False, dropout=dropout, depth=depth, gates=gates[i - 1], **shape)
    _norm(b, "ln_f", norm, bias)
    b("cls_out", "select", dim=0, index=0)
    b("head", "linear", out_features=num_classes, init="gaussian", init_std=STD)
    return b.finish()
