"""Multi-head self-attention through ``scaled_dot_product_attention``.

:class:`SelfAttention` holds its weights under ``nn.MultiheadAttention``'s names
(``in_proj_weight``, ``in_proj_bias``, ``out_proj.weight``, ``out_proj.bias``), so a vision
transformer's state dict loads into it unchanged and it computes what
``nn.MultiheadAttention(dim, heads, batch_first=True)(x, x, x, need_weights=False)[0]`` does.
"""

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SelfAttention", "self_attention"]


def self_attention(
    x: Tensor,
    in_weight: Tensor,
    in_bias: Tensor | None,
    out_weight: Tensor,
    out_bias: Tensor | None,
    *,
    heads: int,
    dropout: float = 0.0,
    causal: bool = False,
) -> Tensor:
    """Self-attention of the tokens of ``x`` (N, S, D) with ``heads`` heads.

    ``in_weight`` (3D, D) projects to queries, keys and values; ``dropout`` drops attention
    weights (pass 0.0 in eval); ``causal`` lets token t attend to tokens 0..t only (a language
    model's mask, applied inside the fused kernel rather than as a stored (S, S) mask).

    >>> import torch
    >>> w = torch.eye(4).repeat(3, 1)
    >>> self_attention(torch.ones(1, 2, 4), w, None, torch.eye(4), None, heads=2).shape
    torch.Size([1, 2, 4])
    """
    if x.dim() != 3:
        raise ValueError(f"x must be (N, S, D), got {tuple(x.shape)}")
    n, s, d = x.shape
    if heads < 1 or d % heads:
        raise ValueError(f"heads must divide the {d} features, got {heads!r}")
    if in_weight.shape != (3 * d, d):
        raise ValueError(f"in_weight must be ({3 * d}, {d}), got {tuple(in_weight.shape)}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    # (N, S, 3, H, D/H) -> three (N, H, S, D/H): the head split nn.MultiheadAttention uses
    qkv = F.linear(x, in_weight, in_bias).view(n, s, 3, heads, d // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=causal)
    return F.linear(out.transpose(1, 2).reshape(n, s, d), out_weight, out_bias)


class SelfAttention(nn.Module):
    """:func:`self_attention` with its weights, initialised as ``nn.MultiheadAttention``'s."""

    def __init__(
        self, dim: int, *, heads: int, dropout: float = 0.0, bias: bool = True, causal: bool = False
    ) -> None:
        super().__init__()
        if heads < 1 or dim % heads:
            raise ValueError(f"heads must divide dim={dim}, got {heads!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        reference = nn.MultiheadAttention(dim, heads, bias=bias, batch_first=True)
        self.in_proj_weight = reference.in_proj_weight
        self.in_proj_bias = reference.in_proj_bias
        self.out_proj = nn.Linear(dim, dim, bias=bias)
        self.out_proj.load_state_dict(reference.out_proj.state_dict())
        self.heads, self.dropout, self.causal = heads, dropout, causal

    def forward(self, x: Tensor) -> Tensor:
        return self_attention(
            x, self.in_proj_weight, self.in_proj_bias, self.out_proj.weight, self.out_proj.bias,
            heads=self.heads, dropout=self.dropout if self.training else 0.0, causal=self.causal,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"heads={self.heads}, dropout={self.dropout}, causal={self.causal}"
