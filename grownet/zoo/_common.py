"""Shared helpers of the zoo builders: option checks and a small chain-building helper.

Every check raises :class:`ValueError` with one line naming the builder, the option, what it
accepts and what was given, e.g. ``lenet2n: n must be an integer >= 1, got 0``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from grownet.graph import LayerSpec, NetGraph
from grownet.graph.ops import INIT_KINDS as INITS


def check_int(fn: str, name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{fn}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_bool(fn: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{fn}: {name} must be True or False, got {value!r}")
    return value


def check_choice(fn: str, name: str, value: Any, choices: Iterable[Any]) -> Any:
    choices = tuple(choices)
    if isinstance(value, bool) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{fn}: {name} must be one of {listed}, got {value!r}")
    return value


def check_prob(
    fn: str, name: str, value: Any, *, low_open: bool = False, high_open: bool = True
) -> float:
    """A probability in [0, 1), or (0, 1] etc. as the flags say."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and (value > 0 if low_open else value >= 0)
        and (value < 1 if high_open else value <= 1)
    )
    if not ok:
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ValueError(f"{fn}: {name} must be a number in {interval}, got {value!r}")
    return float(value)


def check_shape(fn: str, value: Any, *, channels: int | None = None) -> tuple[int, int, int]:
    """An input shape ``(C, H, W)``: a sequence of three positive ints, or "3x32x32"/"3,32,32"."""
    shape: Any = value
    if isinstance(value, str):
        parts = [p for p in re.split(r"[x,\s()\[\]]+", value.strip()) if p]
        shape = [int(p) if p.isdigit() else p for p in parts]
    ok = (
        isinstance(shape, Sequence)
        and len(shape) == 3
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
    )
    if not ok:
        raise ValueError(f"{fn}: in_shape must be (channels, height, width) > 0, got {value!r}")
    if channels is not None and shape[0] != channels:
        raise ValueError(f"{fn}: in_shape must have {channels} channels, got {value!r}")
    return (shape[0], shape[1], shape[2])


def check_init(fn: str, value: Any, allowed: Sequence[str] = INITS) -> str:
    return check_choice(fn, "init", value, allowed)


def weights(init: str, std: float = 0.01, bias: float = 0.0) -> dict[str, Any]:
    """The init parameters of a ``conv``/``linear`` spec."""
    return {"init": init, "init_std": std, "bias_value": bias}


class Chain:
    """Builds a graph mostly as a chain: each call appends a node fed by the last one.

    ``b("conv1", "conv", out_channels=20, kernel_size=5)`` adds ``conv1`` after the last node;
    ``inputs=[...]`` feeds it from named nodes instead (in port order). ``b.last`` is the node
    the next call will follow; set it to branch elsewhere.
    """

    def __init__(self, in_shape: Sequence[int], node: str = "input") -> None:
        self.graph = NetGraph()
        self.last = self.graph.add(node, LayerSpec("input", shape=list(in_shape)))

    def __call__(
        self, node: str, op: str, inputs: Sequence[str] | None = None, **params: Any
    ) -> str:
        feeds = [self.last] if inputs is None else list(inputs)
        self.last = self.graph.add(node, LayerSpec(op, **params), feeds)
        return self.last

    def finish(self, node: str = "output") -> NetGraph:
        """Add the output node after the last one, check the whole graph and return it."""
        self.graph.add(node, LayerSpec("output"), [self.last])
        self.graph.validate()  # a too-small in_shape fails here, naming the node
        return self.graph


def start(fn: str, in_shape: Any, num_classes: Any, init: Any) -> tuple[Chain, dict[str, Any]]:
    """Check the options every image network of the zoo takes; its chain, at the input node,
    and the init parameters of its weighted layers."""
    shape = check_shape(fn, in_shape)
    check_int(fn, "num_classes", num_classes)
    return Chain(shape), weights(check_init(fn, init))
