"""Layer and RMS norms over a prefix of their features: what a narrower norm computes.

A norm reads every feature of a token, so zeroing the features a width sweep removes (or a
width growth has not yet handed over) before it still changes its mean and variance: the
network would not compute what the narrowed (or not yet widened) network computes. These
norms take their statistics over the first ``on`` features only, apply the first ``on``
affine entries and give zeros after them, which is exactly the narrower norm's output padded
with zeros, so every reader behind them sees what narrowing leaves (the slimmable networks'
"switchable" norm, and MSG's masked norm for growth, with a 0/1 mask).

``on`` comes from two settings, both of the executor's or a sweep's to change between steps:
``retain`` (a width sweep's share, counted as :func:`grownet.layers.width.kept_channels`
counts it) and, during a width growth from ``old`` features, ``q`` (the share of the new
features still off, counted as :func:`grownet.layers.width_dropin.width_dropin` counts it, so
a norm and the width DropIns of its group hand the same units over at the same step).
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from grownet.layers.width import check_retain, kept_channels
from grownet.layers.width_dropin import HeldOff

__all__ = ["PrefixLayerNorm", "PrefixRMSNorm", "features_on", "prefix_norm"]

KINDS = ("layer", "rms")


def features_on(features: int, *, retain: float = 1.0, old: int = 0, q: float = 0.0) -> int:
    """How many leading features of ``features`` a prefix norm normalises: a sweep's share
    ``retain`` of them, less the new features a growth from ``old`` still holds off at ``q``.

    >>> features_on(8, retain=0.5), features_on(8, old=4, q=0.5), features_on(8, old=4, q=1.0)
    (4, 6, 4)
    """
    if features < 1:
        raise ValueError(f"features must be >= 1, got {features!r}")
    if not 0 <= old < features:
        raise ValueError(f"old must be in 0..{features - 1} (0: not growing), got {old!r}")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q!r}")
    on = kept_channels(features, retain)
    if old:
        on = min(on, features - math.floor(round(q * (features - old), 9)))
    return on


def prefix_norm(
    x: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    *,
    on: int,
    eps: float,
    kind: str = "layer",
) -> Tensor:
    """``kind`` norm ("layer" or "rms") of the first ``on`` features of ``x``'s last
    dimension with the first ``on`` entries of ``weight`` and ``bias``, zeros after them.

    >>> import torch
    >>> prefix_norm(torch.tensor([[1.0, 3.0, 100.0]]), None, None, on=2, eps=0.0)
    tensor([[-1.,  1.,  0.]])
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if x.dim() < 1:
        raise ValueError(f"x must have a feature dimension, got shape {tuple(x.shape)}")
    features = x.shape[-1]
    if not 1 <= on <= features:
        raise ValueError(f"on must be in 1..{features}, got {on!r}")
    if on < features:
        x = x[..., :on]
        weight = None if weight is None else weight[:on]
        bias = None if bias is None else bias[:on]
    if kind == "layer":
        out = F.layer_norm(x, (on,), weight, bias, eps)
    else:
        out = F.rms_norm(x, (on,), weight, eps)
    return out if on == features else F.pad(out, (0, features - on))


class _Prefix(HeldOff):
    """The settings :func:`features_on` reads, checked when set."""

    old: int
    length: int
    start: int

    def _settings(self, *, retain: float, old: int, length: int, start: int) -> None:
        if old < 0 or (old and (length < 1 or start < 0)):
            raise ValueError(f"a growing norm needs old >= 1, length >= 1 and start >= 0, got "
                             f"old={old!r}, length={length!r}, start={start!r}")  # fmt: skip
        self.retain = retain
        self.old, self.length, self.start = old, length, start
        self.q = 1.0 if old else 0.0  # growing: every new feature off until the executor says

    @property
    def retain(self) -> float:
        return self._retain

    @retain.setter
    def retain(self, value: float) -> None:
        check_retain(value)
        self._retain = float(value)

    def on(self, features: int) -> int:
        return features_on(features, retain=self.retain, old=self.old, q=self.q)

    def _prefix_repr(self) -> str:
        grow = f", old={self.old}, length={self.length}, start={self.start}" if self.old else ""
        return f", retain={self.retain}{grow}" if self.retain < 1 or self.old else ""


class PrefixLayerNorm(_Prefix, nn.LayerNorm):
    """``nn.LayerNorm`` (same state dict) over its first :meth:`on` features.

    >>> import torch
    >>> norm = PrefixLayerNorm(4, retain=0.5)
    >>> norm(torch.tensor([[1.0, 3.0, 7.0, 9.0]])).detach()
    tensor([[-1.0000,  1.0000,  0.0000,  0.0000]])
    """

    def __init__(
        self, features: int, *, eps: float = 1e-5, affine: bool = True, bias: bool = True,
        retain: float = 1.0, old: int = 0, length: int = 0, start: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(features, eps=eps, elementwise_affine=affine, bias=bias)
        self._settings(retain=retain, old=old, length=length, start=start)

    def forward(self, x: Tensor) -> Tensor:
        on = self.on(x.shape[-1])
        return prefix_norm(x, self.weight, self.bias, on=on, eps=self.eps, kind="layer")

    def extra_repr(self) -> str:
        return super().extra_repr() + self._prefix_repr()


class PrefixRMSNorm(_Prefix, nn.RMSNorm):
    """``nn.RMSNorm`` (same state dict) over its first :meth:`on` features."""

    def __init__(
        self, features: int, *, eps: float = 1e-6, affine: bool = True, retain: float = 1.0,
        old: int = 0, length: int = 0, start: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(features, eps=eps, elementwise_affine=affine)
        self._settings(retain=retain, old=old, length=length, start=start)

    def forward(self, x: Tensor) -> Tensor:
        on = self.on(x.shape[-1])
        return prefix_norm(x, self.weight, None, on=on, eps=self.eps, kind="rms")

    def extra_repr(self) -> str:
        return super().extra_repr() + self._prefix_repr()
