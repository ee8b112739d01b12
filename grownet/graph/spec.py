"""Layer specs: the typed, JSON-able description of one node of a :class:`NetGraph`.

A :class:`LayerSpec` is an op name plus its parameters, with every default filled in at
construction so that two specs compare equal exactly when they build the same layer, and so
that a graph written to JSON and read back is identical. Everything an op *means* (how many
inputs it takes, the shape it produces, its parameter and multiply-accumulate counts, the
``nn.Module`` that runs it) lives in :mod:`grownet.graph.ops`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from grownet.graph.base import REQUIRED, GraphError, Shape
from grownet.graph.ops import OPS, check_params

__all__ = ["REQUIRED", "GraphError", "LayerSpec", "Shape"]


def _short(value: Any) -> str:
    """``repr(value)``, cut to fit an error message that a file's content ends up in."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _canonical(value: Any) -> Any:
    # Tuples become lists so that a spec equals its own JSON round trip.
    if isinstance(value, tuple | list):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    return value


@dataclass(eq=True)
class LayerSpec:
    """One layer: an op name and its complete parameters.

    Unknown ops and unknown or missing parameters raise :class:`GraphError` naming them.

    Example:
        >>> from grownet.graph import LayerSpec
        >>> s = LayerSpec("conv", out_channels=20, kernel_size=5)
        >>> s.params["stride"], s.params["padding"]
        (1, 0)
        >>> LayerSpec.from_dict(s.to_dict()) == s
        True
    """

    op: str
    params: dict[str, Any] = field(default_factory=dict)

    def __init__(self, op: str, /, **params: Any) -> None:
        if not isinstance(op, str) or op not in OPS:
            known = ", ".join(sorted(OPS))
            raise GraphError(f"unknown layer op {_short(op)}; known ops: {known}")
        defaults = OPS[op].defaults
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            allowed = ", ".join(sorted(defaults)) or "none"
            raise GraphError(f"op {op!r} has no parameter {unknown[0]!r}; allowed: {allowed}")
        full = {}
        for name, default in defaults.items():
            value = params.get(name, default)
            if value is REQUIRED:
                raise GraphError(f"op {op!r} needs parameter {name!r}")
            full[name] = _canonical(value)
        check_params(op, full)
        self.op = op
        self.params = full

    def replace(self, **params: Any) -> LayerSpec:
        """A copy with some parameters changed."""
        return LayerSpec(self.op, **{**self.params, **params})

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "params": json.loads(json.dumps(self.params))}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerSpec:
        """The spec ``{"op": ..., "params": {...}}`` describes (as :meth:`to_dict` writes it)."""
        if not isinstance(data, dict) or "op" not in data:
            raise GraphError(f"a layer spec must be a mapping with an 'op' key, got {_short(data)}")
        params = data.get("params", {})
        if not isinstance(params, dict):
            raise GraphError(f"'params' must be a mapping of names to values, got {_short(params)}")
        return cls(data["op"], **params)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"LayerSpec({self.op!r}{', ' if inner else ''}{inner})"
