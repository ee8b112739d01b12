"""Shape and element-wise operators: what transformers, ConvNeXt, ShuffleNet, Swin and the
squeeze-and-excitation gates need besides convolutions.

Every parameter counts dimensions per sample, as graph shapes do: ``dims=[1, 2, 0]`` permutes a
(C, H, W) sample to (H, W, C), and the batch dimension stays first, untouched. So no operator
here can mix samples, and a graph keeps working at any batch size.
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ChannelShuffle",
    "Mean",
    "Mul",
    "PatchMerge",
    "Permute",
    "Reshape",
    "Select",
    "Slice",
    "channel_shuffle",
    "mean",
    "mul",
    "patch_merge",
    "permute",
    "reshape",
    "select",
    "slice_dim",
]


def _sample_dim(x: Tensor, dim: int, what: str = "dim") -> int:
    """``dim`` of one sample as a dimension of the batch ``x``; a negative one counts back."""
    rank = x.dim() - 1
    if not -rank <= dim < rank:
        raise ValueError(f"{what} must be in {-rank}..{rank - 1} for samples of rank {rank}, "
                         f"got {dim!r}")  # fmt: skip
    return dim % rank + 1


def mul(*xs: Tensor) -> Tensor:
    """The element-wise product of same-rank inputs; sizes of 1 broadcast (a squeeze-and-
    excitation gate (N, C, 1, 1) times its feature map (N, C, H, W)).

    >>> import torch
    >>> mul(torch.full((1, 2, 1), 2.0), torch.ones(1, 2, 3)).shape
    torch.Size([1, 2, 3])
    """
    if len(xs) < 2:
        raise ValueError(f"mul takes at least 2 inputs, got {len(xs)}")
    if len({x.dim() for x in xs}) > 1:
        shapes = [tuple(x.shape) for x in xs]
        raise ValueError(f"mul inputs must have one rank, got shapes {shapes}")
    out = xs[0]
    for x in xs[1:]:
        out = out * x
    return out


def permute(x: Tensor, dims: Sequence[int]) -> Tensor:
    """``x`` with each sample's dimensions in the order ``dims`` (a permutation of 0..rank-1).

    >>> import torch
    >>> permute(torch.zeros(2, 3, 4, 5), [1, 2, 0]).shape
    torch.Size([2, 4, 5, 3])
    """
    if sorted(dims) != list(range(x.dim() - 1)):
        raise ValueError(
            f"dims must order 0..{x.dim() - 2} (each sample's dims), got {list(dims)}"
        )
    return x.permute(0, *(d + 1 for d in dims))


def reshape(x: Tensor, shape: Sequence[int]) -> Tensor:
    """Each sample of ``x`` reshaped to ``shape`` (the same number of elements).

    >>> import torch
    >>> reshape(torch.zeros(2, 3, 4), [12, 1]).shape
    torch.Size([2, 12, 1])
    """
    if math.prod(shape) != math.prod(x.shape[1:]):
        raise ValueError(f"cannot reshape samples of shape {tuple(x.shape[1:])} to {tuple(shape)}")
    return x.reshape(x.shape[0], *shape)


def slice_dim(x: Tensor, dim: int, start: int, stop: int) -> Tensor:
    """Positions ``start..stop-1`` of each sample's dimension ``dim``: one part of a chunk or
    split (``x.chunk(2, dim=1)[1]`` is ``slice_dim(x, 0, C // 2, C)``).

    >>> import torch
    >>> slice_dim(torch.arange(6.0).view(1, 6), 0, 2, 4)
    tensor([[2., 3.]])
    """
    d = _sample_dim(x, dim)
    if not 0 <= start < stop <= x.shape[d]:
        raise ValueError(f"need 0 <= start < stop <= {x.shape[d]} (the size of dim {dim}), "
                         f"got start={start!r}, stop={stop!r}")  # fmt: skip
    return x.narrow(d, start, stop - start)


def select(x: Tensor, dim: int, index: int) -> Tensor:
    """Position ``index`` of each sample's dimension ``dim``, that dimension dropped (a vision
    transformer's class token: ``x[:, 0]``).

    >>> import torch
    >>> select(torch.arange(6.0).view(1, 3, 2), 0, 1)
    tensor([[2., 3.]])
    """
    d = _sample_dim(x, dim)
    if not 0 <= index < x.shape[d]:
        raise ValueError(f"index must be in 0..{x.shape[d] - 1} (dim {dim}), got {index!r}")
    return x.select(d, index)


def mean(x: Tensor, dims: Sequence[int], keepdim: bool = False) -> Tensor:
    """The mean over each sample's dimensions ``dims`` (a transformer's tokens pooled:
    ``x.mean(1)`` of (N, S, D) is ``mean(x, [0])``).

    >>> import torch
    >>> mean(torch.arange(6.0).view(1, 3, 2), [0]).tolist()
    [[2.0, 3.0]]
    """
    picked = sorted({_sample_dim(x, d, "each of dims") for d in dims})
    if not picked:
        raise ValueError("dims must name at least one dimension of a sample")
    return x.mean(dim=picked, keepdim=keepdim)


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """ShuffleNet's channel shuffle: channel ``g * (C / groups) + i`` moves to ``i * groups + g``.

    >>> import torch
    >>> channel_shuffle(torch.arange(4.0).view(1, 4, 1, 1), 2).flatten().tolist()
    [0.0, 2.0, 1.0, 3.0]
    """
    channels = x.shape[1]
    if groups < 1 or channels % groups:
        raise ValueError(f"groups must divide the {channels} channels, got {groups!r}")
    rest = x.shape[2:]
    return x.reshape(x.shape[0], groups, channels // groups, *rest).transpose(1, 2).reshape(x.shape)


def patch_merge(x: Tensor) -> Tensor:
    """Swin's patch merging before its linear layer: each 2x2 patch of a channels-last
    (N, H, W, C) map becomes one token of its four tokens' channels, (N, ceil(H/2),
    ceil(W/2), 4C), in the order (0, 0), (1, 0), (0, 1), (1, 1) (row, column); an odd side
    is padded with zeros at the bottom or right.

    >>> import torch
    >>> patch_merge(torch.arange(4.0).view(1, 2, 2, 1)).flatten().tolist()
    [0.0, 2.0, 1.0, 3.0]
    """
    if x.dim() != 4:
        raise ValueError(f"x must be (N, H, W, C), got shape {tuple(x.shape)}")
    height, width = x.shape[1], x.shape[2]
    x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
    return torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]],
                     dim=-1)  # fmt: skip


class Mul(nn.Module):
    """:func:`mul` as a layer."""

    def forward(self, *xs: Tensor) -> Tensor:
        return mul(*xs)


class PatchMerge(nn.Module):
    """:func:`patch_merge` as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        return patch_merge(x)


class Permute(nn.Module):
    """:func:`permute` as a layer."""

    def __init__(self, *, dims: Sequence[int]) -> None:
        super().__init__()
        if sorted(dims) != list(range(len(dims))):
            raise ValueError(f"dims must be a permutation of 0..{len(dims) - 1}, got {list(dims)}")
        self.dims = list(dims)

    def forward(self, x: Tensor) -> Tensor:
        return permute(x, self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class Reshape(nn.Module):
    """:func:`reshape` as a layer."""

    def __init__(self, *, shape: Sequence[int]) -> None:
        super().__init__()
        if not shape or any(s < 1 for s in shape):
            raise ValueError(f"shape must be sizes >= 1, got {list(shape)}")
        self.shape = list(shape)

    def forward(self, x: Tensor) -> Tensor:
        return reshape(x, self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class Slice(nn.Module):
    """:func:`slice_dim` as a layer."""

    def __init__(self, *, dim: int, start: int, stop: int) -> None:
        super().__init__()
        if not 0 <= start < stop:
            raise ValueError(f"need 0 <= start < stop, got start={start!r}, stop={stop!r}")
        self.dim, self.start, self.stop = dim, start, stop

    def forward(self, x: Tensor) -> Tensor:
        return slice_dim(x, self.dim, self.start, self.stop)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, start={self.start}, stop={self.stop}"


class Select(nn.Module):
    """:func:`select` as a layer."""

    def __init__(self, *, dim: int, index: int) -> None:
        super().__init__()
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index!r}")
        self.dim, self.index = dim, index

    def forward(self, x: Tensor) -> Tensor:
        return select(x, self.dim, self.index)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, index={self.index}"


class Mean(nn.Module):
    """:func:`mean` over ``dims`` of each sample."""

    def __init__(self, dims: Sequence[int], keepdim: bool = False) -> None:
        super().__init__()
        self.dims, self.keepdim = list(dims), keepdim

    def forward(self, x: Tensor) -> Tensor:
        return mean(x, self.dims, self.keepdim)

    def extra_repr(self) -> str:
        return f"dims={self.dims}, keepdim={self.keepdim}"


class ChannelShuffle(nn.Module):
    """:func:`channel_shuffle` as a layer."""

    def __init__(self, *, groups: int) -> None:
        super().__init__()
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups!r}")
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
