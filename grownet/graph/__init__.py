"""Networks as networkx graphs: layer specs, shape inference, the executor and surgery."""

from grownet.graph.netgraph import NetGraph, NodeCost
from grownet.graph.spec import GraphError, LayerSpec, Shape

__all__ = ["GraphError", "LayerSpec", "NetGraph", "NodeCost", "Shape"]
