"""torchvision's Swin Transformers (v1 and v2) in the fx importer.

Swin's attention hands its weights to ``shifted_window_attention``, a function torch.fx does
not trace into, together with a position bias computed by another (``_get_relative_position_
bias``, and in v2 an MLP over a table of offsets): traced, that is a dozen calls on tensors held
outside any layer. So the tracer stops at the attention modules instead (:class:`Tracer`), and
each becomes one ``window_attention`` node (:mod:`grownet.layers.window`) holding the module's
own weights under the module's names. Patch merging's ``_patch_merging_pad`` (the strided
2x2 gather) is a ``patch_merge`` node; its layer norm and linear layer stay ordinary nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, fx, nn
from torchvision.models.swin_transformer import (
    ShiftedWindowAttention,
    ShiftedWindowAttentionV2,
    _patch_merging_pad,
)

from grownet.graph.spec import LayerSpec

__all__ = ["FUNCTIONS", "WINDOW_ATTENTIONS", "Tracer", "window_attention"]

WINDOW_ATTENTIONS = (ShiftedWindowAttention, ShiftedWindowAttentionV2)
# torchvision's buffers that WindowAttention recomputes from the window size
_RECOMPUTED = ("relative_position_index", "relative_coords_table")

# the importer's function rules: parameter names, tensor parameters, the spec
FUNCTIONS: dict[Any, tuple[tuple[str, ...], tuple[str, ...], Callable[[dict], LayerSpec]]] = {
    _patch_merging_pad: (("x",), ("x",), lambda a: LayerSpec("patch_merge")),
}


class Tracer(fx.Tracer):
    """torch.fx's tracer, calling Swin's attention modules rather than tracing into them.

    Exact types, as the importer's module rules: a subclass may compute something else."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return type(m) in WINDOW_ATTENTIONS or super().is_leaf_module(m, module_qualified_name)


def window_attention(m: ShiftedWindowAttention) -> tuple[LayerSpec, dict[str, Tensor], float]:
    """The ``window_attention`` spec of Swin attention ``m``, its weights (the module's state
    dict but the offset tables, which the layer recomputes from the window) and the
    probability of the dropout after its projection (0.0: none). That dropout is element-wise,
    so it is a ``dropout`` node of its own after the attention. The op's one ``bias`` flag
    is the qkv layer's: the importer requires the projection's to agree."""
    version = 2 if type(m) is ShiftedWindowAttentionV2 else 1
    spec = LayerSpec(
        "window_attention",
        heads=m.num_heads,
        window=_int_or_pair(m.window_size),
        shift=_int_or_pair(m.shift_size),
        version=version,
        p=float(m.attention_dropout),
        bias=m.qkv.bias is not None,
    )
    weights = {key: value for key, value in m.state_dict().items() if key not in _RECOMPUTED}
    return spec, weights, float(m.dropout)


def _int_or_pair(value: list[int]) -> int | list[int]:
    a, b = (int(v) for v in value)
    return a if a == b else [a, b]
