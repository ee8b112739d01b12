"""Zero channel padding, the parameter-free shortcut of ResNet option A and stochastic depth."""

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ChannelPad", "pad_channels"]


def pad_channels(x: Tensor, channels: int) -> Tensor:
    """Append zero channels to ``x`` of shape (N, C, ...) until it has ``channels``.

    >>> import torch
    >>> pad_channels(torch.ones(1, 2), 3)
    tensor([[1., 1., 0.]])
    """
    if x.dim() < 2:
        raise ValueError(f"x must have shape (N, C, ...), got {tuple(x.shape)}")
    if channels < x.shape[1]:
        raise ValueError(f"channels must be >= the input's {x.shape[1]}, got {channels!r}")
    if channels == x.shape[1]:
        return x
    # F.pad lists (before, after) pairs from the last dimension back to the channel one.
    return F.pad(x, (0, 0) * (x.dim() - 2) + (0, channels - x.shape[1]))


class ChannelPad(nn.Module):
    """:func:`pad_channels` as a layer.

    >>> import torch
    >>> ChannelPad(channels=8)(torch.ones(2, 4, 3, 3)).shape
    torch.Size([2, 8, 3, 3])
    """

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels!r}")
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return pad_channels(x, self.channels)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
