"""Networks as networkx graphs: layer specs, shape inference, the executor and surgery.

``from grownet.graph import NetGraph, GraphNet`` works as usual; the names load on first use,
because the op table imports torch and the command line's ``--help`` should not wait for it.
"""

from importlib import import_module
from typing import Any

from grownet.graph.base import GraphError, Shape

__all__ = ["GraphError", "GraphNet", "LayerSpec", "NetGraph", "NodeCost", "Shape"]

_LAZY = {
    "GraphNet": "grownet.graph.executor",
    "LayerSpec": "grownet.graph.spec",
    "NetGraph": "grownet.graph.netgraph",
    "NodeCost": "grownet.graph.netgraph",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'grownet.graph' has no attribute {name!r}")
