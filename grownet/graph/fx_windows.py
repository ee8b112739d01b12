"""torchvision's window attention in the fx importer: Swin Transformers (v1, v2) and MaxViT.

Swin's attention hands its weights to ``shifted_window_attention``, a function torch.fx does
not trace into, together with a position bias computed by another (``_get_relative_position_
bias``, and in v2 an MLP over a table of offsets); MaxViT's indexes its bias table and attends
with ``einsum``. Traced, each is a dozen calls on tensors held outside any layer. So the tracer
stops at these attention modules instead (:class:`Tracer`), and each becomes one node
(:mod:`grownet.layers.window`) holding the module's own weights under the module's names: a
``window_attention`` (Swin: windows, shift and padding inside) or a ``group_attention``
(MaxViT: its windows and grids are plain views around it, which import as they are). Patch
merging's ``_patch_merging_pad`` (Swin's strided 2x2 gather) is a ``patch_merge`` node; its
layer norm and linear layer stay ordinary nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, fx, nn
from torchvision.models.maxvit import RelativePositionalMultiHeadAttention
from torchvision.models.swin_transformer import (
    ShiftedWindowAttention,
    ShiftedWindowAttentionV2,
    _patch_merging_pad,
)

from grownet.graph.spec import LayerSpec

__all__ = ["FUNCTIONS", "LEAVES", "Tracer", "leaf_layer"]

LEAVES = (ShiftedWindowAttention, ShiftedWindowAttentionV2, RelativePositionalMultiHeadAttention)
# torchvision's buffers that grownet.layers.window recomputes from the window size
_RECOMPUTED = ("relative_position_index", "relative_coords_table")

# the importer's function rules: parameter names, tensor parameters, the spec
FUNCTIONS: dict[Any, tuple[tuple[str, ...], tuple[str, ...], Callable[[dict], LayerSpec]]] = {
    _patch_merging_pad: (("x",), ("x",), lambda a: LayerSpec("patch_merge")),
}


class Tracer(fx.Tracer):
    """torch.fx's tracer, calling the attention modules of :data:`LEAVES` rather than tracing
    into them. Exact types, as the importer's module rules: a subclass may compute something
    else."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return type(m) in LEAVES or super().is_leaf_module(m, module_qualified_name)


def leaf_layer(m: nn.Module) -> tuple[LayerSpec, dict[str, Tensor], float]:
    """The spec of attention module ``m`` (one of :data:`LEAVES`), its weights (its state dict
    but the offset tables, which the layer recomputes from the window) and the probability of
    the dropout after its projection (0.0: none; element-wise, so a ``dropout`` node of its own
    after the attention).

    Raises ValueError saying what the op cannot hold: a bias on one of a Swin attention's
    projections only (the op's one ``bias`` flag)."""
    weights = {key: value for key, value in m.state_dict().items() if key not in _RECOMPUTED}
    if isinstance(m, RelativePositionalMultiHeadAttention):
        # MaxViT scales its logits by 1 / sqrt(its features), not of a head's
        spec = LayerSpec("group_attention", heads=m.n_heads, window=m.size,
                         scale=float(m.scale_factor))  # fmt: skip
        return spec, weights, 0.0
    assert isinstance(m, ShiftedWindowAttention)
    if (m.qkv.bias is None) != (m.proj.bias is None):
        raise ValueError("a bias on one of its qkv and proj layers only")
    spec = LayerSpec(
        "window_attention",
        heads=m.num_heads,
        window=_int_or_pair(m.window_size),
        shift=_int_or_pair(m.shift_size),
        version=2 if type(m) is ShiftedWindowAttentionV2 else 1,
        p=float(m.attention_dropout),
        bias=m.qkv.bias is not None,
    )
    return spec, weights, float(m.dropout)


def _int_or_pair(value: list[int]) -> int | list[int]:
    a, b = (int(v) for v in value)
    return a if a == b else [a, b]
