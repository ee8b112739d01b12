"""Caffe's local response normalization, across channels or within each channel."""

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LocalResponseNorm", "local_response_norm"]

REGIONS = ("across", "within")


def _check_options(size: int, alpha: float, beta: float, k: float, region: str) -> None:
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be odd and positive, got {size!r}")
    if not alpha >= 0.0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}")
    if not beta >= 0.0:
        raise ValueError(f"beta must be >= 0, got {beta!r}")
    if not k > 0.0:
        raise ValueError(f"k must be > 0, got {k!r}")
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")


def local_response_norm(
    x: Tensor, *, size: int, alpha: float, beta: float, k: float = 1.0, region: str = "across"
) -> Tensor:
    """Caffe LRN: ``x / (k + alpha / m * sum of x^2 over a window of m values) ** beta``.

    ``region="across"`` (ACROSS_CHANNELS) sums over ``size`` neighbouring channels, m = size,
    exactly as :func:`torch.nn.functional.local_response_norm`. ``region="within"``
    (WITHIN_CHANNEL) sums over a ``size`` x ``size`` spatial window, m = size^2, zero-padded
    by (size - 1) // 2, and needs 4-D input.

    >>> import torch
    >>> x = torch.full((1, 1, 3, 3), 2.0)
    >>> local_response_norm(x, size=3, alpha=1.0, beta=1.0, region="within")[0, 0, 1, 1]
    tensor(0.4000)
    """
    _check_options(size, alpha, beta, k, region)
    if region == "across":
        if x.dim() < 3:
            raise ValueError(f"across-channel LRN needs (N, C, ...) input, got {tuple(x.shape)}")
        return F.local_response_norm(x, size, alpha=alpha, beta=beta, k=k)
    if x.dim() != 4:
        raise ValueError(f"within-channel LRN needs (N, C, H, W) input, got {tuple(x.shape)}")
    # Caffe averages over the full window, padding included, so the divisor is always size^2.
    mean_sq = F.avg_pool2d(x * x, size, stride=1, padding=(size - 1) // 2, count_include_pad=True)
    return x / (k + alpha * mean_sq).pow(beta)


class LocalResponseNorm(nn.Module):
    """:func:`local_response_norm` as a layer.

    >>> LocalResponseNorm(size=3, alpha=5e-5, beta=0.75, region="within")
    LocalResponseNorm(size=3, alpha=5e-05, beta=0.75, k=1.0, region='within')
    """

    def __init__(
        self, *, size: int, alpha: float, beta: float, k: float = 1.0, region: str = "across"
    ) -> None:
        super().__init__()
        _check_options(size, alpha, beta, k, region)
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k
        self.region = region

    def forward(self, x: Tensor) -> Tensor:
        return local_response_norm(
            x, size=self.size, alpha=self.alpha, beta=self.beta, k=self.k, region=self.region
        )

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, "
            f"region={self.region!r}"
        )
