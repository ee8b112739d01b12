"""Attention within windows: the Swin Transformer's (v1 and v2) and MaxViT's.

The tokens of an (N, H, W, C) map attend only to the tokens of their own window of
``wh x ww`` tokens (the map is padded at the bottom and right to whole windows). Every other
block shifts the windows by ``shift`` tokens, so information crosses window borders; the shift
is a cyclic roll of the map, and a mask keeps tokens that the roll brought together from
opposite edges from attending to each other. A learned bias per head and per offset between two
tokens of a window is added to the attention logits:

- v1 (Liu et al., 2021) holds the bias in a table of ``(2wh - 1)(2ww - 1)`` offsets;
- v2 (Liu et al., 2022) computes it with a small MLP from log-spaced offsets (``16 sigmoid``
  of its output), and its logits are cosine similarities of queries and keys, times a learned
  per-head scale of at most 100; its key projection has no bias.

The semantics are torchvision's (``torchvision.models.swin_transformer``), so its state dict
loads into :class:`WindowAttention` unchanged: a window as large as the padded map is not
shifted on that axis, and the mask adds -100 (not -inf) to the logits of mixed regions.

MaxViT (Tu et al., 2022) partitions its map into windows (or a grid) with plain views, and
attends within each group of tokens with a table of biases as Swin v1's, no shift, no mask:
:class:`GroupAttention`, on :func:`group_attention`, which Swin's attention runs too.

Everything here uses ``torch`` alone, so :mod:`grownet.graph.standalone` writes these
definitions into an exported ``model.py`` as they are.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "GroupAttention",
    "WindowAttention",
    "group_attention",
    "log_spaced_offsets",
    "relative_position_index",
    "shifted_window_mask",
    "window_attention",
]


def relative_position_index(
    window: tuple[int, int], device: torch.device | None = None
) -> torch.Tensor:
    """(T, T) index, T = wh x ww tokens of a window (row-major), of each query and key's offset
    (dy, dx) = query - key in a table of (2wh - 1) x (2ww - 1) offsets, row-major.

    >>> relative_position_index((1, 2))  # offsets 0, -1 / +1, 0: entries 1, 0 / 2, 1
    tensor([[1, 0],
            [2, 1]])
    """
    wh, ww = window
    rows = torch.arange(wh, device=device).repeat_interleave(ww)
    cols = torch.arange(ww, device=device).repeat(wh)
    dy = rows[:, None] - rows[None, :] + wh - 1
    dx = cols[:, None] - cols[None, :] + ww - 1
    return dy * (2 * ww - 1) + dx


def log_spaced_offsets(window: tuple[int, int], device: torch.device | None = None) -> torch.Tensor:
    """(2wh - 1, 2ww - 1, 2) offsets (dy, dx) that Swin v2's position-bias MLP reads: scaled to
    [-8, 8] over the window, then ``sign(t) log2(1 + |t|) / 3``, so the MLP sees offsets of
    larger windows (fine-tuning at higher resolution) on nearly the same scale.

    >>> log_spaced_offsets((2, 2))[0, 0]
    tensor([-1.0566, -1.0566])
    """
    wh, ww = window
    if wh < 2 or ww < 2:
        raise ValueError(f"window must be at least 2 a side for v2's offsets, got {list(window)}")
    dy = torch.arange(1 - wh, wh, dtype=torch.float32, device=device) / (wh - 1) * 8
    dx = torch.arange(1 - ww, ww, dtype=torch.float32, device=device) / (ww - 1) * 8
    offsets = torch.stack(torch.meshgrid(dy, dx, indexing="ij"), dim=-1)
    return torch.sign(offsets) * torch.log2(offsets.abs() + 1.0) / 3.0


def shifted_window_mask(
    height: int, width: int, window: tuple[int, int], shift: tuple[int, int],
    device: torch.device | None = None,
) -> torch.Tensor:  # fmt: skip
    """(windows, T, T) mask added to the logits of a (height, width) map rolled up and left by
    ``shift``: 0 where query and key come from the same region of the unrolled map, -100 where
    the roll brought them together from opposite edges.

    >>> shifted_window_mask(2, 2, (2, 2), (1, 0))
    tensor([[[   0.,    0., -100., -100.],
             [   0.,    0., -100., -100.],
             [-100., -100.,    0.,    0.],
             [-100., -100.,    0.,    0.]]])
    """

    def bands(size: int, win: int, by: int) -> torch.Tensor:
        # along one axis, the last window holds the map's edge ([size - win, size - by)) and
        # the rows rolled in from its start ([size - by, size)); no shift, one band
        at = torch.arange(size, device=device)
        return ((at >= size - win).long() + (at >= size - by).long()) if by else at * 0

    wh, ww = window
    region = bands(height, wh, shift[0])[:, None] * 3 + bands(width, ww, shift[1])[None, :]
    region = region.view(height // wh, wh, width // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)
    same = region[:, :, None] == region[:, None, :]
    return torch.zeros(same.shape, device=device).masked_fill(~same, -100.0)


def group_attention(
    x: torch.Tensor,
    qkv_weight: torch.Tensor,
    qkv_bias: torch.Tensor | None,
    proj_weight: torch.Tensor,
    proj_bias: torch.Tensor | None,
    position_bias: torch.Tensor,
    *,
    heads: int,
    scale: float | None = None,
    logit_scale: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    dropout: float = 0.0,
) -> torch.Tensor:
    """Self-attention within each group of tokens of ``x`` (N, G, T, C), ``heads`` heads.

    ``qkv_weight`` (3C, C) projects to queries, keys and values, ``proj_weight`` (C, C) back;
    ``position_bias`` (heads, T, T), and ``mask`` (G, T, T) if given, are added to the logits.
    The logits are dot products times ``scale`` (None: 1 / sqrt(C / heads)), or, with
    ``logit_scale`` (heads, 1, 1), cosine similarities times ``min(exp(logit_scale), 100)``.
    ``dropout`` drops attention weights (pass 0.0 in eval).

    >>> x, w = torch.ones(1, 2, 4, 4), torch.eye(4)
    >>> group_attention(x, w.repeat(3, 1), None, w, None, torch.zeros(2, 4, 4), heads=2).shape
    torch.Size([1, 2, 4, 4])
    """
    if x.dim() != 4:
        raise ValueError(f"x must be (N, G, T, C), got shape {tuple(x.shape)}")
    n, groups, tokens, dim = x.shape
    if heads < 1 or dim % heads:
        raise ValueError(f"heads must divide the {dim} channels, got {heads!r}")
    if tuple(qkv_weight.shape) != (3 * dim, dim) or tuple(proj_weight.shape) != (dim, dim):
        raise ValueError(f"qkv_weight must be ({3 * dim}, {dim}) and proj_weight ({dim}, "
                         f"{dim}), got {tuple(qkv_weight.shape)} and "
                         f"{tuple(proj_weight.shape)}")  # fmt: skip
    if tuple(position_bias.shape) != (heads, tokens, tokens):
        raise ValueError(f"position_bias must be ({heads}, {tokens}, {tokens}), got "
                         f"{tuple(position_bias.shape)}")  # fmt: skip
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if scale is not None and not scale > 0:
        raise ValueError(f"scale must be > 0 (or None: 1 / sqrt(head size)), got {scale!r}")
    qkv = F.linear(x, qkv_weight, qkv_bias).view(n, groups, tokens, 3, heads, dim // heads)
    q, k, v = qkv.permute(3, 0, 1, 4, 2, 5)  # each (N, G, heads, T, C / heads)
    if logit_scale is not None:
        logits = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        logits = logits * logit_scale.exp().clamp(max=100.0)
    else:
        logits = (q * (scale or (dim // heads) ** -0.5)) @ k.transpose(-2, -1)
    logits = logits + position_bias
    if mask is not None:
        logits = logits + mask.to(logits.dtype)[:, None]
    weights = logits.softmax(dim=-1)
    if dropout:
        weights = F.dropout(weights, dropout)
    out = (weights @ v).transpose(2, 3).reshape(n, groups, tokens, dim)
    return F.linear(out, proj_weight, proj_bias)


def window_attention(
    x: torch.Tensor,
    qkv_weight: torch.Tensor,
    qkv_bias: torch.Tensor | None,
    proj_weight: torch.Tensor,
    proj_bias: torch.Tensor | None,
    position_bias: torch.Tensor,
    *,
    heads: int,
    window: tuple[int, int],
    shift: tuple[int, int],
    logit_scale: torch.Tensor | None = None,
    dropout: float = 0.0,
) -> torch.Tensor:
    """Shifted-window self-attention of an (N, H, W, C) map: :func:`group_attention` of the
    tokens of each window (T = wh x ww), rolled by ``shift`` and masked where the roll joined
    opposite edges. ``logit_scale`` given makes it v2's: cosine logits, and the key bias is not
    used.

    >>> x, w = torch.ones(1, 3, 3, 4), torch.eye(4)
    >>> window_attention(x, w.repeat(3, 1), None, w, None, torch.zeros(2, 4, 4), heads=2,
    ...                  window=(2, 2), shift=(1, 1)).shape
    torch.Size([1, 3, 3, 4])
    """
    if x.dim() != 4:
        raise ValueError(f"x must be (N, H, W, C), got shape {tuple(x.shape)}")
    n, height, width, dim = x.shape
    wh, ww = window
    if wh < 1 or ww < 1:
        raise ValueError(f"window must be two sizes >= 1, got {list(window)}")
    if not (0 <= shift[0] < wh and 0 <= shift[1] < ww):
        raise ValueError(f"shift must be in 0..window-1 on each axis (window {list(window)}), "
                         f"got {list(shift)}")  # fmt: skip
    # pad to whole windows; a window as large as the padded map has nothing to shift across
    x = F.pad(x, (0, 0, 0, -width % ww, 0, -height % wh))
    full_h, full_w = x.shape[1], x.shape[2]
    shift = (shift[0] if wh < full_h else 0, shift[1] if ww < full_w else 0)
    mask = None
    if shift != (0, 0):
        x = torch.roll(x, (-shift[0], -shift[1]), dims=(1, 2))
        mask = shifted_window_mask(full_h, full_w, window, shift, device=x.device)
    rows, cols = full_h // wh, full_w // ww
    # (N, rows, wh, cols, ww, C) -> each window's tokens: (N, windows, T, C)
    x = x.view(n, rows, wh, cols, ww, dim).permute(0, 1, 3, 2, 4, 5).reshape(n, -1, wh * ww, dim)
    if logit_scale is not None and qkv_bias is not None:
        qkv_bias = torch.cat([qkv_bias[:dim], torch.zeros_like(qkv_bias[dim:2 * dim]),
                              qkv_bias[2 * dim:]])  # fmt: skip
    out = group_attention(x, qkv_weight, qkv_bias, proj_weight, proj_bias, position_bias,
                          heads=heads, logit_scale=logit_scale, mask=mask,
                          dropout=dropout)  # fmt: skip
    # windows back into the map, rolled back, cropped to the input's size
    out = out.view(n, rows, cols, wh, ww, dim).permute(0, 1, 3, 2, 4, 5)
    out = out.reshape(n, full_h, full_w, dim)
    if shift != (0, 0):
        out = torch.roll(out, shift, dims=(1, 2))
    return out[:, :height, :width]


class WindowAttention(nn.Module):
    """:func:`window_attention` with its weights, under torchvision's names (``qkv``,
    ``proj``, and ``relative_position_bias_table`` in v1, ``cpb_mlp`` and ``logit_scale`` in
    v2), initialised as torchvision's Swin initialises them. The offset index and v2's offsets
    are computed from the window at each call (a few small ops, as torchvision runs v2's MLP at
    each call), not stored: they are no weights, and a network built on the meta device and
    then given its weights (the importer's way) has them right."""

    cpb_hidden = 512  # units of v2's position-bias MLP: the paper's and torchvision's

    def __init__(
        self,
        dim: int,
        *,
        heads: int,
        window: tuple[int, int],
        shift: tuple[int, int] = (0, 0),
        version: int = 1,
        dropout: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if version not in (1, 2):
            raise ValueError(f"version must be 1 or 2, got {version!r}")
        if heads < 1 or dim % heads:
            raise ValueError(f"heads must divide dim={dim}, got {heads!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        wh, ww = window
        if version == 2 and min(wh, ww) < 2:  # v2's offsets are scaled by window - 1
            raise ValueError(f"window must be at least 2 a side for v2's offsets, got {[wh, ww]}")
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)
        for layer in (self.qkv, self.proj):
            nn.init.trunc_normal_(layer.weight, std=0.02)
            if bias:
                nn.init.zeros_(layer.bias)
        if version == 1:
            self.relative_position_bias_table = nn.Parameter(
                nn.init.trunc_normal_(torch.zeros((2 * wh - 1) * (2 * ww - 1), heads), std=0.02)
            )
        else:
            self.logit_scale = nn.Parameter(torch.full((heads, 1, 1), 10.0).log())
            hidden = self.cpb_hidden
            self.cpb_mlp = nn.Sequential(
                nn.Linear(2, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, heads, bias=False)
            )
        self.heads, self.window, self.shift = heads, (wh, ww), (shift[0], shift[1])
        self.version, self.dropout = version, dropout

    def position_bias(self) -> torch.Tensor:
        """(heads, T, T): each head's bias for each query and key of a window."""
        if self.version == 1:
            table = self.relative_position_bias_table
        else:
            offsets = log_spaced_offsets(self.window, self.logit_scale.device)
            table = self.cpb_mlp(offsets.to(self.logit_scale.dtype)).view(-1, self.heads)
        bias = table[relative_position_index(self.window, table.device)].permute(2, 0, 1)
        return bias if self.version == 1 else 16 * torch.sigmoid(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return window_attention(
            x, self.qkv.weight, self.qkv.bias, self.proj.weight, self.proj.bias,
            self.position_bias(), heads=self.heads, window=self.window, shift=self.shift,
            logit_scale=self.logit_scale if self.version == 2 else None,
            dropout=self.dropout if self.training else 0.0,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (f"heads={self.heads}, window={list(self.window)}, shift={list(self.shift)}, "
                f"version={self.version}, dropout={self.dropout}")  # fmt: skip


class GroupAttention(nn.Module):
    """:func:`group_attention` of (N, G, T, C) tokens whose T tokens form a ``window``, with a
    table of biases per head and offset, under torchvision MaxViT's names (``to_qkv``,
    ``merge``, ``relative_position_bias_table``) and initialised as MaxViT initialises them.
    MaxViT scales its logits by 1 / sqrt(C), not by the head size: ``scale``."""

    def __init__(
        self, dim: int, *, heads: int, window: tuple[int, int], scale: float | None = None
    ) -> None:
        super().__init__()
        if heads < 1 or dim % heads:
            raise ValueError(f"heads must divide dim={dim}, got {heads!r}")
        if scale is not None and not scale > 0:
            raise ValueError(f"scale must be > 0 (or None: 1 / sqrt(head size)), got {scale!r}")
        wh, ww = window
        if wh < 1 or ww < 1:
            raise ValueError(f"window must be two sizes >= 1, got {[wh, ww]}")
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.merge = nn.Linear(dim, dim)
        for layer in (self.to_qkv, self.merge):
            nn.init.normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)
        self.relative_position_bias_table = nn.Parameter(
            nn.init.trunc_normal_(torch.zeros((2 * wh - 1) * (2 * ww - 1), heads), std=0.02)
        )
        self.heads, self.window, self.scale = heads, (wh, ww), scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        table = self.relative_position_bias_table
        bias = table[relative_position_index(self.window, table.device)].permute(2, 0, 1)
        return group_attention(x, self.to_qkv.weight, self.to_qkv.bias, self.merge.weight,
                               self.merge.bias, bias, heads=self.heads,
                               scale=self.scale)  # fmt: skip

    def extra_repr(self) -> str:
        return f"heads={self.heads}, window={list(self.window)}, scale={self.scale}"
