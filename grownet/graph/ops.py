"""The op table: what each layer kind takes, produces, costs and runs as.

Each :class:`OpDef` knows its parameters (with defaults), how many inputs it takes, how to
infer its output shape, how many parameters and multiply-accumulates (MACs) it has per sample,
and how to build the ``nn.Module`` that runs it. Shapes exclude the batch dimension.

MACs are counted for the forward pass of one sample, the convention of the ResNet and VGG
papers; FLOPs are ``2 × MACs``. Element-wise ops (ReLU, BN, adds) are counted as zero MACs,
as those papers do: that is why the depth-dropout paper's theoretical saving ignores the
shortcut's BatchNorm and ReLU.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from grownet import layers as L
from grownet.graph.base import REQUIRED, GraphError, Shape
from grownet.layers import shape as S
from grownet.layers.attention import SelfAttention
from grownet.layers.learned import Learned, combine_learned
from grownet.layers.prefix_norm import PrefixLayerNorm, PrefixRMSNorm
from grownet.layers.width_dropin import WidthDropIn
from grownet.layers.window import GroupAttention, WindowAttention

Params = dict[str, Any]


@dataclass(frozen=True)
class OpDef:
    """The meaning of one op kind."""

    name: str
    defaults: dict[str, Any]
    min_inputs: int
    max_inputs: int | None
    infer: Callable[[Params, list[Shape]], Shape]
    build: Callable[[Params, list[Shape]], nn.Module]
    count_params: Callable[[Params, list[Shape], Shape], int] = lambda p, i, o: 0
    count_macs: Callable[[Params, list[Shape], Shape], int] = lambda p, i, o: 0
    gating: bool = False
    """A gating op may, before a step, declare some of its inputs unneeded (see executor)."""

    ports: tuple[str, ...] = ()
    """Names of the input ports, for error messages (empty: positional)."""


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    a, b = value
    return int(a), int(b)


def _need_rank(node_op: str, shape: Shape, rank: int) -> None:
    if len(shape) != rank:
        kind = "(C, H, W)" if rank == 3 else "(F,)"
        hint = " add a 'flatten' first" if rank == 1 else ""
        raise GraphError(f"{node_op} expects input of shape {kind}, got {shape};{hint}".rstrip(";"))


def _pool_out(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil: bool) -> int:
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (math.ceil(span / stride) if ceil else span // stride) + 1
    # Caffe and PyTorch both drop a last window that would start inside the padding only.
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


# --------------------------------------------------------------------------- parameter checks
# Parameter names mean one thing across ops, so one table checks the types and ranges of every
# op's parameters when a spec is made: a graph file's "kernel_size": "3" or "out_channels": -4
# fails there, naming the op and the parameter, not deep in torch. Finer ranges (a dropout
# probability, a DropIn length) are the layers' own checks, run by ``NetGraph.validate``.


def _is_int(v: Any, low: int) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= low


def _is_pair(v: Any, low: int) -> bool:
    pair = isinstance(v, list) and len(v) == 2 and all(_is_int(x, low) for x in v)
    return pair or _is_int(v, low)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "positive": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "int": (lambda v: _is_int(v, -(2**63)), "an integer"),
    "count": (lambda v: _is_int(v, 0), "an integer >= 0"),
    "pair": (lambda v: _is_pair(v, 1), "an integer >= 1 or a pair [h, w] of them"),
    "pad": (lambda v: _is_pair(v, 0), "an integer >= 0 or a pair [h, w] of them"),
    "shape": (
        lambda v: isinstance(v, list) and len(v) > 0 and all(_is_int(x, 1) for x in v),
        "a non-empty list of integers >= 1",
    ),
    "number": (_is_number, "a finite number"),
    "positive_number": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "indices": (
        lambda v: isinstance(v, list) and len(v) > 0 and all(_is_int(x, 0) for x in v),
        "a non-empty list of integers >= 0",
    ),
}

PARAM_KINDS: dict[str, str] = {
    **dict.fromkeys(["out_channels", "out_features", "channels", "dilation", "groups"], "positive"),
    **dict.fromkeys(["size", "heads", "num_embeddings", "quantum"], "positive"),
    **dict.fromkeys(["kernel_size", "stride", "output_size", "window"], "pair"),
    **dict.fromkeys(["padding", "shift"], "pad"),
    "shape": "shape",
    **dict.fromkeys(["start", "seed", "length", "stop", "dim", "index"], "int"),
    **dict.fromkeys(["init_std", "eps", "scale"], "positive_number"),
    **dict.fromkeys(["bias_value", "momentum", "alpha", "beta", "k", "p", "retain"], "number"),
    **dict.fromkeys(["drop_prob", "mxscale", "value"], "number"),
    **dict.fromkeys(["bias", "ceil_mode", "zero_init", "affine", "causal", "keepdim"], "bool"),
    **dict.fromkeys(["init", "region", "mode", "method", "layout", "kind", "tie"], "str"),
    "version": "positive",
    **dict.fromkeys(["head_dim", "keep_heads", "old", "offset", "span"], "count"),
    **dict.fromkeys(["sources", "dims"], "indices"),
}


def check_params(op: str, params: Params) -> None:
    """Raise :class:`GraphError` naming the first parameter of the wrong type or range.

    >>> check_params("conv", {"out_channels": 0, "kernel_size": 3})
    Traceback (most recent call last):
    ...
    grownet.graph.base.GraphError: op 'conv': out_channels must be an integer >= 1, got 0
    """
    for name, value in params.items():
        if value is None and OPS[op].defaults.get(name, REQUIRED) is None:
            continue  # an optional parameter left unset (a pool's stride)
        ok, want = _KINDS[PARAM_KINDS[name]]
        if not ok(value):
            raise GraphError(f"op {op!r}: {name} must be {want}, got {value!r}")


# --------------------------------------------------------------------------- init


def init_weights(module: nn.Module, params: Params) -> None:
    """Initialise a conv or linear module as its spec says.

    ``init``: ``"default"`` (PyTorch's), ``"kaiming"`` (He normal, fan-out, as torchvision's
    ResNets), ``"msra"`` (Caffe's MSRA filler: normal, std sqrt(2/fan_in)), ``"xavier"``
    (Caffe's Xavier filler: uniform ±sqrt(3/fan_in)), or ``"gaussian"`` with ``init_std``.
    The bias is set to ``bias_value`` unless ``init`` is ``"default"``.
    """
    weight = module.weight
    kind = params["init"]
    if kind == "default":
        return
    fan_in = weight[0].numel()  # per output unit, so grouped convs count one group
    if kind == "kaiming":
        nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
    elif kind == "msra":
        nn.init.normal_(weight, 0.0, math.sqrt(2.0 / fan_in))
    elif kind == "xavier":
        bound = math.sqrt(3.0 / fan_in)
        nn.init.uniform_(weight, -bound, bound)
    elif kind == "gaussian":
        nn.init.normal_(weight, 0.0, float(params["init_std"]))
    else:
        raise GraphError(f"unknown init {kind!r}; use one of {', '.join(INIT_KINDS)}")
    if module.bias is not None:
        nn.init.constant_(module.bias, float(params["bias_value"]))


INIT_KINDS = ("default", "kaiming", "msra", "xavier", "gaussian")
_INIT = {"init": "kaiming", "init_std": 0.01, "bias_value": 0.0}

# --------------------------------------------------------------------------- conv / linear


def _conv_infer(p: Params, ins: list[Shape]) -> Shape:
    _need_rank("conv", ins[0], 3)
    c, h, w = ins[0]
    kh, kw = _pair(p["kernel_size"])
    sh, sw = _pair(p["stride"])
    ph, pw = _pair(p["padding"])
    d = p["dilation"]
    if c % p["groups"] or p["out_channels"] % p["groups"]:
        raise GraphError(
            f"conv groups={p['groups']} must divide in_channels={c} and "
            f"out_channels={p['out_channels']}"
        )
    oh = _pool_out(h, kh, sh, ph, d, ceil=False)
    ow = _pool_out(w, kw, sw, pw, d, ceil=False)
    if oh < 1 or ow < 1:
        raise GraphError(f"conv kernel {kh}x{kw} does not fit input {ins[0]}")
    return (p["out_channels"], oh, ow)


def _conv_build(p: Params, ins: list[Shape]) -> nn.Module:
    m = nn.Conv2d(
        ins[0][0],
        p["out_channels"],
        _pair(p["kernel_size"]),
        stride=_pair(p["stride"]),
        padding=_pair(p["padding"]),
        dilation=p["dilation"],
        groups=p["groups"],
        bias=p["bias"],
    )
    init_weights(m, p)
    return m


def _conv_params(p: Params, ins: list[Shape], out: Shape) -> int:
    kh, kw = _pair(p["kernel_size"])
    weights = out[0] * (ins[0][0] // p["groups"]) * kh * kw
    return weights + (out[0] if p["bias"] else 0)


def _conv_macs(p: Params, ins: list[Shape], out: Shape) -> int:
    kh, kw = _pair(p["kernel_size"])
    return out[0] * out[1] * out[2] * (ins[0][0] // p["groups"]) * kh * kw


def _linear_infer(p: Params, ins: list[Shape]) -> Shape:
    """A linear layer maps each sample's last dimension (features, or a token's features)."""
    return (*ins[0][:-1], p["out_features"])


def _linear_build(p: Params, ins: list[Shape]) -> nn.Module:
    m = nn.Linear(ins[0][-1], p["out_features"], bias=p["bias"])
    init_weights(m, p)
    return m


# --------------------------------------------------------------------------- normalisation


def _bn_build(p: Params, ins: list[Shape]) -> nn.Module:
    cls = nn.BatchNorm2d if len(ins[0]) == 3 else nn.BatchNorm1d
    m = cls(ins[0][0], eps=p["eps"], momentum=p["momentum"])
    if p["zero_init"]:
        # Residual branches that start as the identity train deeper nets (Goyal et al.).
        nn.init.zeros_(m.weight)
    return m


def _lrn_build(p: Params, ins: list[Shape]) -> nn.Module:
    _need_rank("lrn", ins[0], 3)
    return L.LocalResponseNorm(
        size=p["size"], alpha=p["alpha"], beta=p["beta"], k=p["k"], region=p["region"]
    )


# --------------------------------------------------------------------------- pooling


def _pool_infer(p: Params, ins: list[Shape]) -> Shape:
    _need_rank("pool", ins[0], 3)
    c, h, w = ins[0]
    k = _pair(p["kernel_size"])
    s = _pair(p["stride"] if p["stride"] is not None else p["kernel_size"])
    pad = _pair(p["padding"])
    oh = _pool_out(h, k[0], s[0], pad[0], 1, p["ceil_mode"])
    ow = _pool_out(w, k[1], s[1], pad[1], 1, p["ceil_mode"])
    if oh < 1 or ow < 1:
        raise GraphError(f"pool window {k} does not fit input {ins[0]}")
    return (c, oh, ow)


def _pool_build(cls: type[nn.Module]) -> Callable[[Params, list[Shape]], nn.Module]:
    def build(p: Params, ins: list[Shape]) -> nn.Module:
        stride = p["stride"] if p["stride"] is not None else p["kernel_size"]
        return cls(
            _pair(p["kernel_size"]), _pair(stride), _pair(p["padding"]), ceil_mode=p["ceil_mode"]
        )

    return build


class GlobalAvgPool(nn.Module):
    """Average over all spatial positions and flatten: (N, C, H, W) -> (N, C)."""

    def forward(self, x):  # type: ignore[no-untyped-def]
        return x.mean(dim=(2, 3))


# --------------------------------------------------------------------------- multi-input


def _same_shapes(op: str, ports: Sequence[str]) -> Callable[[Params, list[Shape]], Shape]:
    def infer(p: Params, ins: list[Shape]) -> Shape:
        if len(set(ins)) > 1:
            names = ports or [f"input {i}" for i in range(len(ins))]
            listed = ", ".join(f"{n} {s}" for n, s in zip(names, ins, strict=False))
            fix = "; insert a 'resize' node to match them" if op == "dropin" else ""
            raise GraphError(f"{op} inputs must have one shape, got {listed}{fix}")
        return ins[0]

    return infer


def _resize_infer(p: Params, ins: list[Shape]) -> Shape:
    out = tuple(p["shape"])
    if len(out) != len(ins[0]):
        raise GraphError(f"resize target {out} has a different rank than its input {ins[0]}")
    return out


def _flatten_infer(p: Params, ins: list[Shape]) -> Shape:
    return (math.prod(ins[0]),)


def _gap_infer(p: Params, ins: list[Shape]) -> Shape:
    _need_rank("global_avgpool", ins[0], 3)
    return (ins[0][0],)


def _channel_pad_infer(p: Params, ins: list[Shape]) -> Shape:
    if p["channels"] < ins[0][0]:
        raise GraphError(f"channel_pad to {p['channels']} channels cannot shrink input {ins[0]}")
    return (p["channels"], *ins[0][1:])


def _same(p: Params, ins: list[Shape]) -> Shape:
    return ins[0]


def _width_dropin_infer(p: Params, ins: list[Shape]) -> Shape:
    """The input's shape, once its channels are checked against ``old`` and ``sources``."""
    offset, span = p["offset"], p["span"]
    if span and offset + span > ins[0][0]:
        raise GraphError(f"width_dropin offset + span must be within its input's {ins[0][0]} "
                         f"channels, got offset={offset}, span={span}")  # fmt: skip
    channels, old, sources = span or ins[0][0], p["old"], p["sources"]
    if not 1 <= old < channels:
        raise GraphError(f"width_dropin old={old} must be in 1..{channels - 1}: at least one "
                         f"of its input's {channels} channels is old, one new")  # fmt: skip
    if sources is not None and (len(sources) != channels - old or max(sources) >= old):
        raise GraphError(
            f"width_dropin sources must give each of the {channels - old} new channels an old "
            f"one in 0..{old - 1}, got {sources}"
        )
    return ins[0]


def _width_dropout_infer(p: Params, ins: list[Shape]) -> Shape:
    """The input's shape, once a span is checked against its channels."""
    channels, offset, span = ins[0][0], p["offset"], p["span"]
    if span and (p["mode"] != "prefix" or offset + span > channels):
        raise GraphError(f"width_dropout span needs mode 'prefix' and offset + span within its "
                         f"input's {channels} channels, got mode={p['mode']!r}, offset={offset}, "
                         f"span={span}")  # fmt: skip
    if (span or channels) % p["quantum"]:
        raise GraphError(f"width_dropout quantum must divide the {span or channels} channels it "
                         f"thins, got {p['quantum']}")  # fmt: skip
    return ins[0]


NORMS = ("layer_norm", "rms_norm")
# a norm over a prefix of its features (grownet.layers.prefix_norm): a width sweep's share,
# and a growth's schedule of the features it hands over (as its group's width DropIns)
_PREFIX = {"retain": 1.0, "old": 0, "length": 0, "start": 0}


def _prefix_infer(p: Params, ins: list[Shape]) -> Shape:
    """The input's shape, once the prefix settings are checked against its features."""
    features, retain, old = ins[0][-1], p["retain"], p["old"]
    if not 0.0 < retain <= 1.0:
        raise GraphError(f"norm retain must be in (0, 1] (the share of features kept), "
                         f"got {retain!r}")  # fmt: skip
    if old and not (old < features and p["length"] >= 1 and p["start"] >= 0):
        raise GraphError(f"a growing norm needs old in 1..{features - 1} (its features before "
                         f"growth), length >= 1 and start >= 0, got old={old}, length="
                         f"{p['length']}, start={p['start']}")  # fmt: skip
    return ins[0]


def _prefix_settings(p: Params) -> dict[str, Any]:
    return {k: p[k] for k in _PREFIX}


def _width_dropin_build(p: Params, ins: list[Shape]) -> nn.Module:
    return WidthDropIn(old=p["old"], length=p["length"], start=p["start"], sources=p["sources"],
                       offset=p["offset"], span=p["span"])  # fmt: skip


# Element-wise activations beyond ReLU, one op with a ``kind`` so the table stays short; the
# module classes are PyTorch's own, so an imported network computes exactly what it did.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu6": nn.ReLU6,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "leaky_relu": nn.LeakyReLU,  # PyTorch's default slope 0.01
    "elu": nn.ELU,  # alpha 1
}


def _activation_build(p: Params, ins: list[Shape]) -> nn.Module:
    """The activation module ``kind`` names.

    >>> _activation_build({"kind": "relu6"}, [(4,)])
    ReLU6()
    >>> _activation_build({"kind": "swish"}, [(4,)])
    Traceback (most recent call last):
    ...
    ValueError: kind must be one of relu6, sigmoid, tanh, gelu, silu, hardswish, \
hardsigmoid, leaky_relu, elu, got 'swish'
    """
    make = ACTIVATIONS.get(p["kind"])
    if make is None:
        raise ValueError(f"kind must be one of {', '.join(ACTIVATIONS)}, got {p['kind']!r}")
    return make()


def _adaptive_infer(p: Params, ins: list[Shape]) -> Shape:
    _need_rank("adaptive_avgpool", ins[0], 3)
    return (ins[0][0], *_pair(p["output_size"]))


def _concat_infer(p: Params, ins: list[Shape]) -> Shape:
    """Channels (the first per-sample dimension) add up; every other dimension must agree."""
    rest = {s[1:] for s in ins}
    if len(rest) > 1 or len({len(s) for s in ins}) > 1:
        listed = ", ".join(f"input {i} {s}" for i, s in enumerate(ins))
        raise GraphError(f"concat inputs must agree in all but the channels, got {listed}")
    return (sum(s[0] for s in ins), *ins[0][1:])


class Concat(nn.Module):
    """Concatenate same-sized inputs along the channels (dimension 1)."""

    def forward(self, *xs):  # type: ignore[no-untyped-def]
        return torch.cat(xs, dim=1)


def _meta_infer(
    run: Callable[[Params, list[torch.Tensor]], torch.Tensor],
) -> Callable[[Params, list[Shape]], Shape]:
    """Shape inference by running the op's own function on meta tensors (shapes, no data):
    one mechanism for every shape op, and it cannot disagree with what the op computes."""

    def infer(p: Params, ins: list[Shape]) -> Shape:
        xs = [torch.empty((1, *shape), device="meta") for shape in ins]
        try:
            return tuple(run(p, xs).shape[1:])
        except (ValueError, RuntimeError) as err:
            raise GraphError(str(err)) from None

    return infer


def _shape_op(
    name: str,
    defaults: dict[str, Any],
    fn: Callable[..., torch.Tensor],
    module: Callable[..., nn.Module],
) -> OpDef:
    """A one-input op that moves values without weights: ``fn(x, **params)`` and its module
    ``module(**params)`` take the op's parameters by name; shapes come from running ``fn``."""
    return _op(name, defaults, (1, 1), _meta_infer(lambda p, xs: fn(xs[0], **p)),
               lambda p, i: module(**p))  # fmt: skip


def _embedding_build(p: Params, ins: list[Shape]) -> nn.Module:
    """A token table: each sample's integer ids (S,) become vectors (S, D)."""
    module = nn.Embedding(p["num_embeddings"], p["out_features"])
    nn.init.normal_(module.weight, 0.0, float(p["init_std"]))
    return module


def head_size(p: Params, dim: int) -> int:
    """Features of each head of an attention layer with params ``p`` over ``dim`` features:
    ``head_dim``, or (0) ``dim // heads``."""
    return p["head_dim"] or dim // p["heads"]


def _attention_inner(p: Params, dim: int) -> int:
    """Features the heads project to: heads x head size."""
    return p["heads"] * head_size(p, dim)


def _attention_infer(p: Params, ins: list[Shape]) -> Shape:
    heads, size, keep = p["heads"], p["head_dim"], p["keep_heads"]
    if keep > heads:
        raise GraphError(f"attention: keep_heads must be in 0..heads={heads} (0: all), got {keep}")
    if len(ins[0]) != 2 or (not size and ins[0][1] % heads):
        raise GraphError(
            f"attention expects tokens (S, D) with D divisible by heads={heads} (or head_dim "
            f"set), got {ins[0]}"
        )
    return ins[0]


def _attention_params(p: Params, ins: list[Shape], out: Shape) -> int:
    dim = ins[0][1]
    inner = _attention_inner(p, dim)
    return 4 * dim * inner + (3 * inner + dim if p["bias"] else 0)


def _attention_macs(p: Params, ins: list[Shape], out: Shape) -> int:
    tokens, dim = ins[0]
    inner = _attention_inner(p, dim)  # counted as built: every head, kept or not
    # projections in (3 D I) and out (I D) per token, then scores and their weighted sum
    return 4 * tokens * dim * inner + 2 * tokens * tokens * inner


def _window_infer(p: Params, ins: list[Shape]) -> Shape:
    """A channels-last map (H, W, C) in, the same out; the windows may exceed the map (it is
    padded to whole windows)."""
    heads, window, shift = p["heads"], _pair(p["window"]), _pair(p["shift"])
    if len(ins[0]) != 3 or ins[0][2] % heads:
        raise GraphError(f"window_attention expects a channels-last map (H, W, C) with C "
                         f"divisible by heads={heads}, got {ins[0]}")  # fmt: skip
    if not all(s < w for s, w in zip(shift, window, strict=True)):
        raise GraphError(f"window_attention: shift must be below window={p['window']} on each "
                         f"axis, got {p['shift']}")  # fmt: skip
    if p["version"] not in (1, 2) or (p["version"] == 2 and min(window) < 2):
        raise GraphError(f"window_attention: version must be 1, or 2 with a window of at least "
                         f"2 a side, got version={p['version']}, window={p['window']}")  # fmt: skip
    return ins[0]


def _window_params(p: Params, ins: list[Shape], out: Shape) -> int:
    dim, heads, (wh, ww) = ins[0][2], p["heads"], _pair(p["window"])
    projections = 4 * dim * dim + (4 * dim if p["bias"] else 0)
    if p["version"] == 1:  # a table of every offset within a window
        return projections + (2 * wh - 1) * (2 * ww - 1) * heads
    # the MLP (2 -> hidden, with bias -> heads) and a logit scale per head
    hidden = WindowAttention.cpb_hidden
    return projections + 3 * hidden + hidden * heads + heads


def _window_macs(p: Params, ins: list[Shape], out: Shape) -> int:
    (height, width, dim), (wh, ww) = ins[0], _pair(p["window"])
    windows, tokens = math.ceil(height / wh) * math.ceil(width / ww), wh * ww
    # projections of every (padded) token, then each window's scores and weighted sum
    macs = 4 * windows * tokens * dim * dim + 2 * windows * tokens * tokens * dim
    if p["version"] == 2:  # the MLP over every offset, once a forward
        macs += (2 * wh - 1) * (2 * ww - 1) * WindowAttention.cpb_hidden * (2 + p["heads"])
    return macs


def _group_infer(p: Params, ins: list[Shape]) -> Shape:
    """Groups of tokens (G, T, C) in, T the tokens of one window; the same shape out."""
    heads, (wh, ww) = p["heads"], _pair(p["window"])
    if len(ins[0]) != 3 or ins[0][1] != wh * ww or ins[0][2] % heads:
        raise GraphError(f"group_attention expects groups of tokens (G, {wh * ww}, C) for "
                         f"window={p['window']}, with C divisible by heads={heads}, got "
                         f"{ins[0]}")  # fmt: skip
    return ins[0]


def _group_params(p: Params, ins: list[Shape], out: Shape) -> int:
    # projections with biases, and a table of every offset within a window
    dim, (wh, ww) = ins[0][2], _pair(p["window"])
    return 4 * dim * (dim + 1) + (2 * wh - 1) * (2 * ww - 1) * p["heads"]


def _group_macs(p: Params, ins: list[Shape], out: Shape) -> int:
    groups, tokens, dim = ins[0]
    return 4 * groups * tokens * dim * dim + 2 * groups * tokens * tokens * dim


def _op(
    name: str,
    defaults: dict[str, Any],
    inputs: tuple[int, int | None],
    infer: Callable[[Params, list[Shape]], Shape],
    build: Callable[[Params, list[Shape]], nn.Module],
    **extra: Any,
) -> OpDef:
    return OpDef(name, defaults, inputs[0], inputs[1], infer, build, **extra)


def _input_infer(p: Params, ins: list[Shape]) -> Shape:
    shape = tuple(p["shape"])
    if not shape or any(not isinstance(d, int) or d < 1 for d in shape):
        raise GraphError(f"input shape must be positive integers, got {p['shape']!r}")
    return shape


_BN_PARAMS = lambda p, i, o: 2 * i[0][0]  # noqa: E731 - weight and bias; running stats are buffers

OPS: dict[str, OpDef] = {
    op.name: op
    for op in [
        _op("input", {"shape": REQUIRED}, (0, 0), _input_infer, lambda p, i: nn.Identity()),
        _op("output", {}, (1, 1), _same, lambda p, i: nn.Identity()),
        _op("identity", {}, (1, 1), _same, lambda p, i: nn.Identity()),
        _op(
            "conv",
            {
                "out_channels": REQUIRED,
                "kernel_size": REQUIRED,
                "stride": 1,
                "padding": 0,
                "dilation": 1,
                "groups": 1,
                "bias": True,
                **_INIT,
            },
            (1, 1),
            _conv_infer,
            _conv_build,
            count_params=_conv_params,
            count_macs=_conv_macs,
        ),
        _op(
            "linear",
            # tie: an embedding node whose table this layer uses as its weight (a language
            # model's head shares its token embedding; the executor ties the two)
            {"out_features": REQUIRED, "bias": True, "tie": None, **_INIT},
            (1, 1),
            _linear_infer,
            _linear_build,
            count_params=lambda p, i, o: (0 if p["tie"] else i[0][-1] * o[-1])
            + (o[-1] if p["bias"] else 0),
            count_macs=lambda p, i, o: i[0][-1] * math.prod(o),
        ),
        _op(
            "batchnorm",
            {"eps": 1e-5, "momentum": 0.1, "zero_init": False},
            (1, 1),
            _same,
            _bn_build,
            count_params=_BN_PARAMS,
        ),
        _op("relu", {}, (1, 1), _same, lambda p, i: nn.ReLU()),
        _op(
            "maxpool",
            {"kernel_size": REQUIRED, "stride": None, "padding": 0, "ceil_mode": False},
            (1, 1),
            _pool_infer,
            _pool_build(nn.MaxPool2d),
        ),
        _op(
            "avgpool",
            {"kernel_size": REQUIRED, "stride": None, "padding": 0, "ceil_mode": False},
            (1, 1),
            _pool_infer,
            _pool_build(nn.AvgPool2d),
        ),
        _op("global_avgpool", {}, (1, 1), _gap_infer, lambda p, i: GlobalAvgPool()),
        _op(
            "adaptive_avgpool",
            {"output_size": REQUIRED},
            (1, 1),
            _adaptive_infer,
            lambda p, i: nn.AdaptiveAvgPool2d(_pair(p["output_size"])),
        ),
        _op("activation", {"kind": REQUIRED}, (1, 1), _same, _activation_build),
        _op(
            "lrn",
            {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0, "region": "across"},
            (1, 1),
            _same,
            _lrn_build,
        ),
        _op("flatten", {}, (1, 1), _flatten_infer, lambda p, i: nn.Flatten()),
        _op("dropout", {"p": 0.5}, (1, 1), _same, lambda p, i: nn.Dropout(p["p"])),
        _op(
            "width_dropout",
            {"retain": 1.0, "mode": "random", "offset": 0, "span": 0, "quantum": 1},
            (1, 1),
            _width_dropout_infer,
            lambda p, i: L.WidthDropout(
                retain=p["retain"], mode=p["mode"], offset=p["offset"], span=p["span"],
                quantum=p["quantum"],
            ),
        ),
        _op(
            "width_dropin",
            {"old": REQUIRED, "length": 1000, "start": 0, "sources": None, "offset": 0,
             "span": 0},
            (1, 1),
            _width_dropin_infer,
            _width_dropin_build,
            # its q changes every step: kept out of compiled chains, which would recompile
            gating=True,
        ),
        _op(
            "channel_pad",
            {"channels": REQUIRED},
            (1, 1),
            _channel_pad_infer,
            lambda p, i: L.ChannelPad(channels=p["channels"]),
        ),
        _op(
            "resize",
            {"shape": REQUIRED, "method": "crop", "seed": 0},
            (1, 1),
            _resize_infer,
            lambda p, i: L.Resize(i[0], tuple(p["shape"]), method=p["method"], seed=p["seed"]),
        ),
        _op("add", {}, (2, None), _same_shapes("add", ()), lambda p, i: Sum()),
        # one input is a copy: DenseNet's first layer concatenates the features it is given
        _op("concat", {}, (1, None), _concat_infer, lambda p, i: Concat()),
        _op("mul", {}, (2, None), _meta_infer(lambda p, xs: S.mul(*xs)), lambda p, i: S.Mul()),
        _shape_op("permute", {"dims": REQUIRED}, S.permute, S.Permute),
        _shape_op("reshape", {"shape": REQUIRED}, S.reshape, S.Reshape),
        _shape_op("slice", {"dim": 0, "start": REQUIRED, "stop": REQUIRED}, S.slice_dim, S.Slice),
        _shape_op("select", {"dim": 0, "index": REQUIRED}, S.select, S.Select),
        _shape_op("channel_shuffle", {"groups": REQUIRED}, S.channel_shuffle, S.ChannelShuffle),
        _shape_op("mean", {"dims": REQUIRED, "keepdim": False}, S.mean, S.Mean),
        _op(
            "layer_norm",
            {"eps": 1e-5, "affine": True, "bias": True, **_PREFIX},
            (1, 1),
            _prefix_infer,
            lambda p, i: PrefixLayerNorm(
                i[0][-1], eps=p["eps"], affine=p["affine"], bias=p["bias"], **_prefix_settings(p)
            ),
            count_params=lambda p, i, o: i[0][-1] * p["affine"] * (1 + p["bias"]),
        ),
        _op(
            "rms_norm",
            {"eps": 1e-6, "affine": True, **_PREFIX},
            (1, 1),
            _prefix_infer,
            lambda p, i: PrefixRMSNorm(
                i[0][-1], eps=p["eps"], affine=p["affine"], **_prefix_settings(p)
            ),
            count_params=lambda p, i, o: i[0][-1] * p["affine"],
        ),
        _op(
            "embedding",
            {"num_embeddings": REQUIRED, "out_features": REQUIRED, "init_std": 0.02},
            (1, 1),
            lambda p, i: (*i[0], p["out_features"]),
            _embedding_build,
            count_params=lambda p, i, o: p["num_embeddings"] * p["out_features"],
        ),
        _op(
            "param",
            {"shape": REQUIRED, "mode": REQUIRED, "value": 0.0, "init_std": None},
            (1, 1),
            _meta_infer(
                lambda p, xs: combine_learned(
                    xs[0], torch.empty(p["shape"], device="meta"), p["mode"]
                )
            ),
            lambda p, i: Learned(
                tuple(p["shape"]), mode=p["mode"], value=p["value"], init_std=p["init_std"]
            ),
            count_params=lambda p, i, o: math.prod(p["shape"]),
        ),
        _op(
            "attention",
            {"heads": REQUIRED, "p": 0.0, "bias": True, "causal": False, "head_dim": 0,
             "keep_heads": 0},
            (1, 1),
            _attention_infer,
            lambda p, i: SelfAttention(
                i[0][-1], heads=p["heads"], head_dim=p["head_dim"], keep_heads=p["keep_heads"],
                dropout=p["p"], bias=p["bias"], causal=p["causal"],
            ),
            count_params=_attention_params,
            count_macs=_attention_macs,
        ),
        _op(
            "window_attention",
            {"heads": REQUIRED, "window": REQUIRED, "shift": 0, "version": 1, "p": 0.0,
             "bias": True},
            (1, 1),
            _window_infer,
            lambda p, i: WindowAttention(
                i[0][-1], heads=p["heads"], window=_pair(p["window"]), shift=_pair(p["shift"]),
                version=p["version"], dropout=p["p"], bias=p["bias"],
            ),
            count_params=_window_params,
            count_macs=_window_macs,
        ),
        _op(
            "group_attention",
            {"heads": REQUIRED, "window": REQUIRED, "scale": None},
            (1, 1),
            _group_infer,
            lambda p, i: GroupAttention(
                i[0][-1], heads=p["heads"], window=_pair(p["window"]), scale=p["scale"]
            ),
            count_params=_group_params,
            count_macs=_group_macs,
        ),
        _shape_op("patch_merge", {}, S.patch_merge, S.PatchMerge),
        _op(
            "dropin",
            {
                "mode": "gradual",
                "length": 1000,
                "start": 0,
                "p": 0.5,
                "mxscale": 1.0,
                "layout": "sample",
            },
            (2, 2),
            _same_shapes("dropin", ("new", "old")),
            lambda p, i: L.DropIn(
                mode=p["mode"],
                length=p["length"],
                start=p["start"],
                p=p["p"],
                mxscale=p["mxscale"],
                layout=p["layout"],
            ),
            gating=True,
            ports=("new", "old"),
        ),
        _op(
            "gated_add",
            {"kind": "depth_dropout", "drop_prob": 0.0, "mode": "skip"},
            (2, 2),
            _same_shapes("gated_add", ("branch", "shortcut")),
            lambda p, i: L.GatedAdd(kind=p["kind"], drop_prob=p["drop_prob"], mode=p["mode"]),
            gating=True,
            ports=("branch", "shortcut"),
        ),
    ]
}


class Sum(nn.Module):
    """Element-wise sum of any number of same-shaped inputs."""

    def forward(self, *xs):  # type: ignore[no-untyped-def]
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out
