"""Width dropout: drop whole channels at random, or keep a prefix to simulate a thinner layer."""

import math

import torch
from torch import Tensor, nn

__all__ = ["WidthDropout", "check_retain", "kept_channels", "width_dropout"]

WIDTH_MODES = ("random", "prefix")


def check_retain(retain: float) -> None:
    """Raise ``ValueError`` unless ``retain`` is a share of channels in (0, 1]."""
    if not 0.0 < retain <= 1.0:
        raise ValueError(f"retain must be in (0, 1], got {retain!r}")


def kept_channels(channels: int, retain: float, quantum: int = 1) -> int:
    """Channels a layer of width ``channels`` keeps at ``retain``: max(1, ceil(channels * retain)),
    or, for channels that go in blocks of ``quantum`` (a grouped conv's groups), that many
    whole blocks of the ``channels / quantum``.

    >>> kept_channels(10, 0.1 + 0.2), kept_channels(10, 0.01), kept_channels(32, 0.3, quantum=8)
    (3, 1, 16)
    """
    check_retain(retain)
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels!r}")
    if quantum < 1 or channels % quantum:
        raise ValueError(f"quantum must divide the {channels} channels, got {quantum!r}")
    blocks = channels // quantum
    # Rounding first stops float error from adding a channel: 10 * (0.1 + 0.2) = 3.0000000000000004.
    return quantum * max(1, math.ceil(round(blocks * retain, 9)))


def width_dropout(
    x: Tensor,
    retain: float,
    *,
    mode: str = "random",
    training: bool = True,
    generator: torch.Generator | None = None,
    offset: int = 0,
    span: int = 0,
    quantum: int = 1,
) -> Tensor:
    """Channel dropout on ``x`` of shape (N, C, ...) keeping a share ``retain`` of channels.

    ``mode="random"``: drop each channel of each sample with probability 1 - retain and scale
    the kept ones by 1/retain; the identity in eval. A 2-D input drops single units.
    ``mode="prefix"``: keep the first :func:`kept_channels` channels and zero the rest, in
    training and eval alike and without rescaling, so the layer acts as a thinner one; with
    ``span`` > 0 only the ``span`` channels from ``offset`` on are thinned so, the others
    passing untouched (one layer's channels among others behind a concat); channels that go
    in blocks of ``quantum`` keep whole blocks (:func:`kept_channels`).
    ``generator``, on ``x``'s device, drives the random draws.

    >>> width_dropout(torch.ones(1, 4), 0.5, mode="prefix")
    tensor([[1., 1., 0., 0.]])
    >>> width_dropout(torch.ones(1, 6), 0.5, mode="prefix", offset=1, span=4)
    tensor([[1., 1., 1., 0., 0., 1.]])
    """
    check_retain(retain)
    if mode not in WIDTH_MODES:
        raise ValueError(f"mode must be one of {WIDTH_MODES}, got {mode!r}")
    if x.dim() < 2:
        raise ValueError(f"x must have shape (N, C, ...), got {tuple(x.shape)}")
    channels = x.shape[1]
    if span and (mode != "prefix" or offset < 0 or offset + span > channels):
        raise ValueError(f"a span needs mode 'prefix' and offset + span within the {channels} "
                         f"channels, got mode={mode!r}, offset={offset}, span={span}")  # fmt: skip
    if mode == "prefix":
        start, width = (offset, span) if span else (0, channels)
        keep = kept_channels(width, retain, quantum)
        if keep == width:
            return x
        index = torch.arange(channels, device=x.device)
        dropped = (index >= start + keep) & (index < start + width)
        return x.masked_fill(dropped.view(channels, *[1] * (x.dim() - 2)), 0.0)
    if not training or retain == 1.0:
        return x
    mask_shape = (x.shape[0], channels, *[1] * (x.dim() - 2))
    kept = torch.rand(mask_shape, generator=generator, device=x.device) < retain
    return x * (kept.to(x.dtype) / retain)


class WidthDropout(nn.Module):
    """:func:`width_dropout` as a layer; ``retain`` may be changed between steps.

    >>> layer = WidthDropout(retain=0.5, mode="prefix")
    >>> layer.retain = 0.25
    >>> layer(torch.ones(1, 4))
    tensor([[1., 0., 0., 0.]])
    """

    def __init__(
        self, *, retain: float, mode: str = "random", offset: int = 0, span: int = 0,
        quantum: int = 1,
    ) -> None:  # fmt: skip
        super().__init__()
        if mode not in WIDTH_MODES:
            raise ValueError(f"mode must be one of {WIDTH_MODES}, got {mode!r}")
        if span and mode != "prefix":
            raise ValueError(f"a span needs mode 'prefix', got mode={mode!r}")
        self.mode, self.offset, self.span, self.quantum = mode, offset, span, quantum
        self.retain = retain

    @property
    def retain(self) -> float:
        return self._retain

    @retain.setter
    def retain(self, value: float) -> None:
        check_retain(value)
        self._retain = value

    def forward(self, x: Tensor) -> Tensor:
        return width_dropout(x, self.retain, mode=self.mode, training=self.training,
                             offset=self.offset, span=self.span, quantum=self.quantum)  # fmt: skip

    def extra_repr(self) -> str:
        spanned = f", offset={self.offset}, span={self.span}" if self.span else ""
        blocks = f", quantum={self.quantum}" if self.quantum > 1 else ""
        return f"retain={self.retain}, mode={self.mode!r}{spanned}{blocks}"
