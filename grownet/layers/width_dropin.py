"""Width DropIn: mix a widened layer's new units into its consumers unit by unit.

A layer widened from ``old`` to ``old + k`` channels passes its output through a width DropIn
on every edge where the channels are read. Gradual DropIn's rule (eq. 1, :func:`gradual_q`)
decides how many new units are still off: ``floor(q * k)``. An off unit shows its consumers
its *stand-in* instead of its own output: zero for a randomly initialised unit, or the unit it
was split from for a Net2Net split (whose consumers' columns were halved for the pair, so
the pair then reads as the one old unit). At q = 1 the consumers see exactly the old network;
at q = 0 the plain widened one.

Why unit by unit rather than scaling every new unit by p = 1 - q:

- every step is a real network of an integer width (the old units plus the first handed-over
  new ones), the same prefix-of-channels shape the width sweep and narrowing use, so a
  schedule stopped half-way is a narrowing away from a plain network, with no scale to fold;
- it is eq. 1, the rule and the q the Planner already gives gradual DropIn nodes;
- a Net2Net split stays exact at every q with a stand-in (the source unit's output), whereas
  a continuous scale would need the source's column rescaled by 1 - p/2 as well;
- units still off get exactly zero gradient and units on get their full gradient, instead
  of every new unit learning at a rate scaled by p.

New units are handed over in order, the first new unit first, so the units on are always a
prefix of the channels.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["HeldOff", "WidthDropIn", "width_dropin", "width_dropin_weight"]


def _check(channels: int, old: int, sources: Sequence[int] | None) -> None:
    if not 1 <= old < channels:
        raise ValueError(f"old must be in 1..{channels - 1} for {channels} channels, got {old!r}")
    if sources is not None:
        if len(sources) != channels - old:
            raise ValueError(
                f"sources must name one old unit per new unit ({channels - old}), "
                f"got {len(sources)}"
            )
        bad = [s for s in sources if not 0 <= s < old]
        if bad:
            raise ValueError(f"sources must be old units in 0..{old - 1}, got {bad[0]!r}")


@functools.lru_cache(maxsize=256)
def _keep_mask(
    channels: int, on: int, dims: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """Ones for the first ``on`` of ``channels`` input channels, zeros after, shaped to
    broadcast over a weight of ``dims`` dimensions. Cached: a schedule takes each value for
    many steps, and a step reads it once per widened reader (never written to)."""
    keep = torch.ones(channels, dtype=dtype, device=device)
    keep[on:] = 0
    return keep.view(1, channels, *([1] * (dims - 2)))


def _units_off(
    channels: int, old: int, q: float, sources: Tensor | Sequence[int] | None
) -> int:
    """How many of the ``channels - old`` new units are off at ratio ``q`` (all checked)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q!r}")
    # A layer's sources were checked when it was made; reading a tensor here would sync.
    _check(channels, old, None if isinstance(sources, Tensor) else sources)
    if isinstance(sources, Tensor) and sources.numel() != channels - old:
        raise ValueError(f"sources has {sources.numel()} units for {channels - old} new ones")
    return math.floor(round(q * (channels - old), 9))  # rounding first, as gradual DropIn does


def width_dropin(
    x: Tensor,
    *,
    old: int,
    q: float,
    sources: Tensor | Sequence[int] | None = None,
    offset: int = 0,
    span: int = 0,
) -> Tensor:
    """``x`` (N, C, ...) with the last ``floor(q * k)`` of its ``k = C - old`` new channels off.

    An off channel shows its stand-in: zero, or channel ``sources[i]`` for new channel ``i``
    (a Net2Net split). Deterministic, in training and eval alike; ``x`` itself is returned
    once every new channel is on. With ``span`` > 0 the layer's channels are the ``span``
    from ``offset`` on (one layer's among others behind a concat), ``old`` and ``sources``
    counted within them; the channels around pass untouched.

    >>> x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    >>> width_dropin(x, old=2, q=0.5)
    tensor([[1., 2., 3., 0.]])
    >>> width_dropin(x, old=2, q=1.0, sources=[1, 0])
    tensor([[1., 2., 2., 1.]])
    >>> width_dropin(x, old=1, q=1.0, offset=1, span=2)
    tensor([[1., 2., 0., 4.]])
    """
    if x.dim() < 2:
        raise ValueError(f"x must have shape (N, C, ...), got {tuple(x.shape)}")
    if span and (offset < 0 or offset + span > x.shape[1]):
        raise ValueError(f"offset + span must be within the {x.shape[1]} channels, got "
                         f"offset={offset}, span={span}")  # fmt: skip
    channels = span or x.shape[1]
    new, off = channels - old, _units_off(channels, old, q, sources)
    if off == 0:
        return x
    on = offset + channels - off  # where the units still off start
    if sources is None:
        standin = x.new_zeros((x.shape[0], off, *x.shape[2:]))
    else:
        index = torch.as_tensor(sources, device=x.device)[new - off :] + offset
        standin = x.index_select(1, index)
    return torch.cat([x[:, :on], standin, x[:, offset + channels :]], dim=1)


def width_dropin_weight(
    weight: Tensor, *, old: int, q: float, sources: Tensor | Sequence[int] | None = None
) -> Tensor:
    """The weight of a conv or linear reader (input channels on dim 1) that reads through
    :func:`width_dropin`: ``conv(width_dropin(x), W) == conv(x, width_dropin_weight(W))``.

    Why: the reader is linear in its input channels, so holding a unit off (or standing its
    source in for it) can move from the activations to the weight's columns: a pass over a
    weight instead of over a whole activation tensor, which kept a training step mid-widening
    within 5 % of the plain network's (:mod:`grownet.bench.widening`). Gradients agree too:
    off columns read nothing, and an off unit's producer gets none.

    >>> w = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    >>> width_dropin_weight(w, old=2, q=0.5)
    tensor([[1., 2., 3., 0.]])
    >>> width_dropin_weight(w, old=2, q=1.0, sources=[1, 0])
    tensor([[5., 5., 0., 0.]])
    """
    channels = weight.shape[1]
    new, off = channels - old, _units_off(channels, old, q, sources)
    if off == 0:
        return weight
    on = channels - off
    # A mask, not a concatenation: the product keeps the weight's memory format (channels
    # last), so the convolution takes its fast path instead of converting every step.
    read = weight * _keep_mask(channels, on, weight.dim(), weight.dtype, weight.device)
    if sources is None:
        return read
    index = torch.as_tensor(sources, device=weight.device)[new - off :]
    return read.index_add_(1, index, weight[:, on:])  # in place: read is this call's own


class HeldOff:
    """A layer's ``q``: the share of its new units still held off this step, set by the
    executor before each step from its schedule (``length``, ``start``), checked when set."""

    @property
    def q(self) -> float:
        return self._q

    @q.setter
    def q(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {value!r}")
        self._q = float(value)


class WidthDropIn(HeldOff, nn.Module):
    """:func:`width_dropin` as a layer; the caller sets ``q`` before each step.

    ``length`` and ``start`` are the schedule the Planner reads (``gradual_q``); ``q`` starts
    at 1 (every new unit off), so inserting the layer leaves the network's function unchanged.

    >>> layer = WidthDropIn(old=2, length=10)
    >>> layer(torch.ones(1, 4))
    tensor([[1., 1., 0., 0.]])
    >>> layer.q = 0.0
    >>> layer(torch.ones(1, 4))
    tensor([[1., 1., 1., 1.]])
    """

    def __init__(
        self,
        *,
        old: int,
        length: int,
        start: int = 0,
        sources: Sequence[int] | None = None,
        offset: int = 0,
        span: int = 0,
    ) -> None:
        super().__init__()
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length!r}")
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start!r}")
        if old < 1:
            raise ValueError(f"old must be >= 1, got {old!r}")
        self.old, self.length, self.start = old, length, start
        self.offset, self.span = offset, span
        self.sources: Tensor | None
        if sources is None:
            self.sources = None
        else:
            _check(old + len(sources), old, sources)
            self.register_buffer("sources", torch.tensor(list(sources)), persistent=False)
        self.q = 1.0

    def forward(self, x: Tensor) -> Tensor:
        return width_dropin(x, old=self.old, q=self.q, sources=self.sources,
                            offset=self.offset, span=self.span)  # fmt: skip

    def extra_repr(self) -> str:
        split = "" if self.sources is None else f", sources={self.sources.tolist()}"
        spanned = f", offset={self.offset}, span={self.span}" if self.span else ""
        return (f"old={self.old}, length={self.length}, start={self.start}, q={self.q}{split}"
                f"{spanned}")  # fmt: skip
