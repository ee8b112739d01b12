"""A learned tensor combined with a layer's input: layer scale, position embeddings and class
tokens, the parameters that vision transformers and ConvNeXt hold outside any layer.

The tensor has a per-sample shape and is shared by every sample: ``mode="mul"`` multiplies the
input by it (ConvNeXt's layer scale, shape (C, 1, 1)), ``"add"`` adds it (a position
embedding), ``"prepend"`` puts it in front of the input along each sample's first dimension
(a class token of shape (1, D) before (S, D) tokens).
"""

import torch
from torch import Tensor, nn

__all__ = ["MODES", "Learned", "combine_learned"]

MODES = ("mul", "add", "prepend")


def combine_learned(x: Tensor, weight: Tensor, mode: str) -> Tensor:
    """``x`` (N, ...) combined with ``weight`` (one sample's tensor) as ``mode`` says.

    >>> combine_learned(torch.ones(2, 3), torch.zeros(1), "prepend").tolist()
    [[0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0]]
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if weight.dim() != x.dim() - 1:
        raise ValueError(f"weight {tuple(weight.shape)} must have the rank of one sample "
                         f"of x {tuple(x.shape)}")  # fmt: skip
    if mode == "prepend":
        if weight.shape[1:] != x.shape[2:]:
            raise ValueError(f"a prepended {tuple(weight.shape)} must match the samples "
                             f"{tuple(x.shape[1:])} in all but the first dim")  # fmt: skip
        return torch.cat([weight.expand(x.shape[0], *weight.shape), x], dim=1)
    fits = all(w in (1, s) for w, s in zip(weight.shape, x.shape[1:], strict=True))
    if not fits:
        raise ValueError(f"weight {tuple(weight.shape)} must broadcast to the samples "
                         f"{tuple(x.shape[1:])}")  # fmt: skip
    return x * weight if mode == "mul" else x + weight


class Learned(nn.Module):
    """:func:`combine_learned` with its tensor ``weight``: filled with ``value``, or drawn
    from N(0, ``init_std``) when that is given (a position embedding's initialisation)."""

    def __init__(
        self,
        shape: tuple[int, ...],
        *,
        mode: str,
        value: float = 0.0,
        init_std: float | None = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.weight = nn.Parameter(torch.full(tuple(shape), float(value)))
        if init_std is not None:
            nn.init.normal_(self.weight, 0.0, init_std)

    def forward(self, x: Tensor) -> Tensor:
        return combine_learned(x, self.weight, self.mode)

    def extra_repr(self) -> str:
        return f"shape={tuple(self.weight.shape)}, mode={self.mode!r}"
