"""Resize an activation to another layer's shape, so DropIn can mix the two (memorandum app. A).

Target shapes exclude the batch: ``(C, H, W)`` for 4-D input, ``(F,)`` for 2-D input, where
the feature dimension F follows the channel rules.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Resize", "resize_crop", "resize_interpolate"]

METHODS = ("crop", "interpolate")


def _check_shape(shape: tuple[int, ...], name: str) -> None:
    if len(shape) not in (1, 3) or any(size < 1 for size in shape):
        raise ValueError(f"{name} must be (F,) or (C, H, W) with sizes >= 1, got {shape!r}")


def _check_target(x: Tensor, shape: tuple[int, ...]) -> None:
    _check_shape(shape, "shape")
    if x.dim() != len(shape) + 1:
        raise ValueError(
            f"shape {shape!r} needs a {len(shape) + 1}-D input, got shape {tuple(x.shape)}"
        )


def _fit_channels(x: Tensor, channels: int, extra: Tensor | None) -> Tensor:
    # Truncate, or append the input channels listed in ``extra``; None repeats the last one.
    have = x.shape[1]
    if channels <= have:
        return x[:, :channels]
    if extra is None:
        fill = x[:, -1:].expand(-1, channels - have, *x.shape[2:])
    else:
        fill = x.index_select(1, extra.to(x.device))
    return torch.cat([x, fill], dim=1)


def resize_crop(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Crop from the top-left or zero-pad at the bottom/right; take the first channels or
    repeat the last one.

    >>> x = torch.arange(1.0, 5.0).view(1, 1, 2, 2)
    >>> resize_crop(x, (2, 1, 3))
    tensor([[[[1., 2., 0.]],
    <BLANKLINE>
             [[1., 2., 0.]]]])
    """
    _check_target(x, shape)
    x = _fit_channels(x, shape[0], None)
    if x.dim() == 2:
        return x
    height, width = shape[1:]
    x = x[:, :, :height, :width]
    return F.pad(x, (0, width - x.shape[3], 0, height - x.shape[2]))


def _interpolate(x: Tensor, shape: tuple[int, ...], extra: Tensor | None) -> Tensor:
    x = _fit_channels(x, shape[0], extra)
    if x.dim() == 2 or x.shape[2:] == shape[1:]:
        return x
    # Caffe's Blob::Resize asked OpenCV for INTER_AREA when the width shrinks and INTER_CUBIC
    # otherwise. Adaptive average pooling is pixel-area resampling; it matches OpenCV exactly
    # for integer factors and uses whole-pixel bins for the others.
    if shape[2] < x.shape[3]:
        return F.adaptive_avg_pool2d(x, shape[1:])
    return F.interpolate(x, size=shape[1:], mode="bicubic", align_corners=False)


def resize_interpolate(
    x: Tensor, shape: tuple[int, ...], *, extra_channels: Tensor | None = None
) -> Tensor:
    """Resize each channel as an image (bicubic up, area down) and take the first channels
    or append ``x[:, extra_channels]``, a LongTensor of ``C_out - C_in`` input-channel indices.

    >>> x = torch.arange(16.0).view(1, 1, 4, 4)
    >>> resize_interpolate(x, (2, 2, 2), extra_channels=torch.tensor([0]))
    tensor([[[[ 2.5000,  4.5000],
              [10.5000, 12.5000]],
    <BLANKLINE>
             [[ 2.5000,  4.5000],
              [10.5000, 12.5000]]]])
    """
    _check_target(x, shape)
    have, need = x.shape[1], max(0, shape[0] - x.shape[1])
    if extra_channels is None:
        if need:
            raise ValueError(f"adding {need} channels needs extra_channels, got None")
    elif extra_channels.dtype != torch.long or extra_channels.shape != (need,):
        raise ValueError(
            f"extra_channels must be a LongTensor of shape ({need},), got dtype "
            f"{extra_channels.dtype} and shape {tuple(extra_channels.shape)}"
        )
    elif need and not 0 <= int(extra_channels.min()) <= int(extra_channels.max()) < have:
        raise ValueError(
            f"extra_channels must index the {have} input channels, got {extra_channels.tolist()}"
        )
    return _interpolate(x, shape, extra_channels)


class Resize(nn.Module):
    """Resize inputs of shape ``(N, *in_shape)`` to ``(N, *out_shape)``.

    ``method="crop"`` applies :func:`resize_crop`, ``method="interpolate"``
    :func:`resize_interpolate`. When interpolating to more channels, the memorandum copied
    input channels drawn anew with ``rand()`` on every call; here they are drawn once, from
    ``seed``, so the layer stays the same function throughout training and across replays.

    >>> Resize((3, 8, 8), (4, 4, 4), method="interpolate")(torch.ones(2, 3, 8, 8)).shape
    torch.Size([2, 4, 4, 4])
    """

    extra_channels: Tensor | None

    def __init__(
        self,
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        *,
        method: str = "crop",
        seed: int = 0,
    ) -> None:
        super().__init__()
        in_shape, out_shape = tuple(in_shape), tuple(out_shape)
        if len(in_shape) != len(out_shape):
            raise ValueError(
                f"in_shape and out_shape must have the same rank, got {in_shape!r} and "
                f"{out_shape!r}"
            )
        _check_shape(in_shape, "in_shape")
        _check_shape(out_shape, "out_shape")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed!r}")
        self.in_shape = in_shape
        self.out_shape = out_shape
        self.method = method
        self.seed = seed
        need = out_shape[0] - in_shape[0]
        extra = None
        if method == "interpolate" and need > 0:
            generator = torch.Generator().manual_seed(seed)
            extra = torch.randint(in_shape[0], (need,), generator=generator)
        # Not persistent: the indices follow from (in_shape, out_shape, seed), and an integer
        # entry in the state dict would trip code that averages or blends state dicts.
        self.register_buffer("extra_channels", extra, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1:] != self.in_shape:
            raise ValueError(f"expected input of shape (N, *{self.in_shape}), got {tuple(x.shape)}")
        if self.method == "crop":
            return resize_crop(x, self.out_shape)
        # The indices were drawn in range, so resize_interpolate's range check (a device sync)
        # is skipped.
        return _interpolate(x, self.out_shape, self.extra_channels)

    def extra_repr(self) -> str:
        seed = f", seed={self.seed}" if self.extra_channels is not None else ""
        return f"in_shape={self.in_shape}, out_shape={self.out_shape}, method={self.method!r}{seed}"
