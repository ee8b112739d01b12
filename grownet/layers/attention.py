"""Multi-head self-attention through ``scaled_dot_product_attention``.

:class:`SelfAttention` holds its weights under ``nn.MultiheadAttention``'s names
(``in_proj_weight``, ``in_proj_bias``, ``out_proj.weight``, ``out_proj.bias``), so a vision
transformer's state dict loads into it unchanged and it computes what
``nn.MultiheadAttention(dim, heads, batch_first=True)(x, x, x, need_weights=False)[0]`` does.
"""

import torch
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
    keep_heads: int = 0,
) -> Tensor:
    """Self-attention of the tokens of ``x`` (N, S, D) with ``heads`` heads.

    ``in_weight`` (3I, D) projects to queries, keys and values of I = heads x head size
    features (I = D unless the heads were resized) and ``out_weight`` (D, I) back; ``dropout``
    drops attention weights (pass 0.0 in eval); ``causal`` lets token t attend to tokens 0..t
    only (a language model's mask, applied inside the fused kernel rather than as a stored
    (S, S) mask). ``keep_heads`` > 0 runs the first ``keep_heads`` heads alone: a width sweep's
    prefix dropout of heads, computing what removing the others for good computes.

    >>> import torch
    >>> w = torch.eye(4).repeat(3, 1)
    >>> self_attention(torch.ones(1, 2, 4), w, None, torch.eye(4), None, heads=2).shape
    torch.Size([1, 2, 4])
    """
    if x.dim() != 3:
        raise ValueError(f"x must be (N, S, D), got {tuple(x.shape)}")
    n, s, d = x.shape
    inner = in_weight.shape[0] // 3
    if heads < 1 or inner % heads:
        raise ValueError(f"heads must divide the {inner} projected features, got {heads!r}")
    if in_weight.shape != (3 * inner, d) or out_weight.shape != (d, inner):
        raise ValueError(f"in_weight must be (3I, {d}) and out_weight ({d}, I), got "
                         f"{tuple(in_weight.shape)} and {tuple(out_weight.shape)}")  # fmt: skip
    if not 0 <= keep_heads <= heads:
        raise ValueError(f"keep_heads must be in 0..{heads} (0: all), got {keep_heads!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    size = inner // heads
    if 0 < keep_heads < heads:
        # the first heads' rows of each of q, k and v, and their columns of the output
        kept = keep_heads * size
        in_weight = in_weight.view(3, inner, d)[:, :kept].reshape(3 * kept, d)
        in_bias = None if in_bias is None else in_bias.view(3, inner)[:, :kept].reshape(-1)
        out_weight, heads, inner = out_weight[:, :kept], keep_heads, kept
    # (N, S, 3, H, I/H) -> three (N, H, S, I/H): the head split nn.MultiheadAttention uses
    qkv = F.linear(x, in_weight, in_bias).view(n, s, 3, heads, size)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=causal)
    return F.linear(out.transpose(1, 2).reshape(n, s, inner), out_weight, out_bias)


class SelfAttention(nn.Module):
    """:func:`self_attention` with its weights, initialised as ``nn.MultiheadAttention``'s.

    ``head_dim`` (0: ``dim // heads``) sets each head's size, so a network whose heads were
    narrowed away or grown keeps its other heads as they were."""

    def __init__(
        self,
        dim: int,
        *,
        heads: int,
        head_dim: int = 0,
        keep_heads: int = 0,
        dropout: float = 0.0,
        bias: bool = True,
        causal: bool = False,
    ) -> None:
        super().__init__()
        if heads < 1 or (not head_dim and dim % heads) or head_dim < 0:
            raise ValueError(f"heads must divide dim={dim} (or give head_dim > 0), got heads="
                             f"{heads!r}, head_dim={head_dim!r}")  # fmt: skip
        if not 0 <= keep_heads <= heads:
            raise ValueError(f"keep_heads must be in 0..{heads} (0: all), got {keep_heads!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        inner = heads * (head_dim or dim // heads)
        if inner == dim:
            reference = nn.MultiheadAttention(dim, heads, bias=bias, batch_first=True)
            self.in_proj_weight = reference.in_proj_weight
            self.in_proj_bias = reference.in_proj_bias
            self.out_proj = nn.Linear(dim, dim, bias=bias)
            self.out_proj.load_state_dict(reference.out_proj.state_dict())
        else:  # nn.MultiheadAttention cannot hold other sizes; initialised as it initialises
            self.in_proj_weight = nn.Parameter(torch.empty(3 * inner, dim))
            nn.init.xavier_uniform_(self.in_proj_weight)
            self.in_proj_bias = nn.Parameter(torch.zeros(3 * inner)) if bias else None
            self.out_proj = nn.Linear(inner, dim, bias=bias)
            if bias:
                nn.init.zeros_(self.out_proj.bias)
        self.heads, self.head_dim, self.keep_heads = heads, head_dim, keep_heads
        self.dropout, self.causal = dropout, causal

    def forward(self, x: Tensor) -> Tensor:
        return self_attention(
            x, self.in_proj_weight, self.in_proj_bias, self.out_proj.weight, self.out_proj.bias,
            heads=self.heads, dropout=self.dropout if self.training else 0.0, causal=self.causal,
            keep_heads=self.keep_heads,
        )  # fmt: skip

    def extra_repr(self) -> str:
        sized = f", head_dim={self.head_dim}" if self.head_dim else ""
        kept = f", keep_heads={self.keep_heads}" if self.keep_heads else ""
        return f"heads={self.heads}{sized}{kept}, dropout={self.dropout}, causal={self.causal}"
