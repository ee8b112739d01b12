"""Operators that grownet graphs are built from.

DropIn and Resize grow a network by mixing new layers in; GatedAdd and the survival rules thin
it by depth; width dropout thins it by width; LRN and channel padding complete the classic
architectures the papers used. Each operator is a checked pure function plus a thin module.
"""

from grownet.layers.dropin import DropIn, dropin, gradual_q
from grownet.layers.gated import (
    GatedAdd,
    draw_gates,
    linear_decay_survival,
    residual_add,
    survival_probabilities,
)
from grownet.layers.norm import LocalResponseNorm, local_response_norm
from grownet.layers.pad import ChannelPad, pad_channels
from grownet.layers.resize import Resize, resize_crop, resize_interpolate
from grownet.layers.width import WidthDropout, kept_channels, width_dropout

__all__ = [
    "ChannelPad",
    "DropIn",
    "GatedAdd",
    "LocalResponseNorm",
    "Resize",
    "WidthDropout",
    "draw_gates",
    "dropin",
    "gradual_q",
    "kept_channels",
    "linear_decay_survival",
    "local_response_norm",
    "pad_channels",
    "residual_add",
    "resize_crop",
    "resize_interpolate",
    "survival_probabilities",
    "width_dropout",
]
