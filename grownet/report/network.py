"""The network drawn from its graph: a layered layout computed in Python (no graphviz).

Layers are networkx's topological generations (a node's layer is its longest path from the
input), laid out left to right; within a layer nodes are ordered by the mean height of their
inputs, so a branch stays beside the node it left. Edges that skip layers (shortcuts) arc above
the nodes they pass. Nodes are coloured by op; DropIn units and gated adds get their own
marker, and nodes in the exclusive branch of a gated edge that can close (the work a closed
gate skips, see :func:`grownet.graph.executor.exclusive_branches`) are drawn as diamonds.
A node's size grows with its width (channels, or units), and where the layers leave room each
node is labelled with its op and width. Hover shows each node's op, width, shape, parameters,
MACs and options.

Example:
    >>> from grownet.zoo import convnet
    >>> fig = network_figure(convnet(widths=(8,)), title="convnet")
    >>> sum(len(t.x) for t in fig.data if t.meta == "node") == len(convnet(widths=(8,)))
    True
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

import networkx as nx
import plotly.graph_objects as go
from plotly.colors import qualitative

from grownet.graph import NetGraph
from grownet.graph.executor import exclusive_branches
from grownet.graph.ops import OPS
from grownet.report.figures import styled

SPECIAL = {  # op: (colour, marker symbol)
    "dropin": ("#d62728", "star"),
    "gated_add": ("#9467bd", "hexagram"),
}
_OP_COLOURS = [c for c in qualitative.Set2 + qualitative.Pastel1 if c not in ("#d62728",)]
_SHOWN_PARAMS = 6  # options listed on hover, so a node's tooltip stays readable
_LABEL_ROOM = 28  # layers at most for visible labels: more, and a report's width crowds them
_SIZES = (8, 22)  # marker sizes of the narrowest and the widest node


def layered_layout(graph: NetGraph) -> dict[str, tuple[float, float]]:
    """``node -> (x, y)``: x = topological generation, y = slot within it, centred on 0.

    Example:
        >>> from grownet.zoo import convnet
        >>> pos = layered_layout(convnet(widths=(8,)))
        >>> pos["input"], pos["conv1_1"]
        ((0, 0.0), (1, 0.0))
    """
    order = {n: i for i, n in enumerate(graph.topological_order())}
    pos: dict[str, tuple[float, float]] = {}

    def key(node: str) -> tuple[float, int]:  # inputs are placed: they are in earlier layers
        ys = [pos[u][1] for u in graph.inputs(node)]
        return (sum(ys) / len(ys) if ys else 0.0, order[node])

    for x, layer in enumerate(nx.topological_generations(graph.nx)):
        ranked = sorted(layer, key=key)
        for slot, node in enumerate(ranked):
            pos[node] = (x, slot - (len(ranked) - 1) / 2)
    return pos


def _edge_path(a: tuple[float, float], b: tuple[float, float]) -> list[tuple[float, float]]:
    """Straight between neighbouring layers; an edge skipping layers arcs above them."""
    if b[0] - a[0] <= 1:
        return [a, b]
    top = max(a[1], b[1]) + 0.6
    return [a, (a[0] + 0.5, top), (b[0] - 0.5, top), b]


def can_close(graph: NetGraph, gate: str, port: int) -> bool:
    """Whether some step may leave input ``port`` of gating node ``gate`` out, as
    :meth:`GraphNet.closed_edges` decides: a gradual DropIn's new input while q = 1 and its old
    one once q = 0 (a regularizing one only at p = 0 or 1); a gated add's branch when it skips
    (mode "skip") and may drop (drop_prob > 0). Its shortcut is always computed. A width
    DropIn reads its one input every step."""
    params = graph.spec(gate).params
    if graph.op(gate) == "width_dropin":
        return False
    if graph.op(gate) == "dropin":
        q = None if params["mode"] == "gradual" else 1.0 - params["p"]
        return q is None or (q >= 1.0 if port == 0 else q <= 0.0)
    return port == 0 and params["mode"] == "skip" and params["drop_prob"] > 0


def _branch_of(graph: NetGraph) -> dict[str, list[str]]:
    """``node -> ["gate (port)", ...]``: the gated edges whose closing would skip the node."""
    owners: dict[str, list[str]] = defaultdict(list)
    for (source, gate), nodes in exclusive_branches(graph).items():
        port = graph.inputs(gate).index(source)
        if can_close(graph, gate, port):
            for node in nodes:
                owners[node].append(f"{gate} ({OPS[graph.op(gate)].ports[port]})")
    return owners


def width_text(shape: tuple[int, ...]) -> str:
    """A node's width as a reader counts it: channels of an image-like (C, H, W) output,
    units of a flat one, else the shape.

    Example:
        >>> width_text((16, 8, 8)), width_text((1, 8, 8)), width_text((10,)), width_text((4, 6))
        ('16 channels', '1 channel', '10 units', '4x6')
    """
    if len(shape) not in (1, 3):
        return "x".join(map(str, shape))
    unit = "channel" if len(shape) == 3 else "unit"
    return f"{shape[0]:,} {unit}" + ("" if shape[0] == 1 else "s")


def _sizes(nodes: list[str], shapes: dict[str, tuple[int, ...]]) -> dict[str, float]:
    """Marker size per node, on a log scale of its width (the first dimension), so a wide
    layer stands out from a narrow one even where there is no room to label them."""
    logs = {n: math.log(max(shapes[n][0], 1)) if shapes[n] else 0.0 for n in nodes}
    low, high = min(logs.values()), max(logs.values())
    small, big = _SIZES
    return {n: small + (big - small) * (v - low) / ((high - low) or 1) for n, v in logs.items()}


def _hover(graph: NetGraph, node: str, shape: tuple[int, ...], cost: Any, owners: list[str]) -> str:
    spec = graph.spec(node)
    options = [f"{k}={v}" for k, v in spec.params.items() if not k.startswith("init")]
    lines = [
        f"<b>{node}</b> ({spec.op}): {width_text(shape)}",
        f"shape {'x'.join(map(str, shape))}",
        f"params {cost.params:,}  MACs {cost.macs:,}",
    ]
    if options:
        more = " ..." if len(options) > _SHOWN_PARAMS else ""
        lines.append(", ".join(options[:_SHOWN_PARAMS]) + more)
    if owners:
        lines.append("skipped when closed: " + ", ".join(owners))
    return "<br>".join(lines)


def network_figure(graph: NetGraph, *, title: str) -> go.Figure:
    """The graph as a plotly figure: one edge trace, one marker per node (``meta="node"``)."""
    shapes, costs = graph.shapes(), graph.costs()
    pos = layered_layout(graph)
    owners = _branch_of(graph)
    fig = go.Figure()
    xs: list[float | None] = []
    ys: list[float | None] = []
    for u, v in graph.nx.edges:
        path = _edge_path(pos[u], pos[v])
        xs += [p[0] for p in path] + [None]
        ys += [p[1] for p in path] + [None]
    fig.add_scatter(
        x=xs, y=ys, mode="lines", name="edges", meta="edge", hoverinfo="skip",
        line={"color": "#b0b0b0", "width": 1},
    )  # fmt: skip
    groups: dict[tuple[str, bool], list[str]] = defaultdict(list)
    for node in graph.topological_order():
        groups[(graph.op(node), node in owners)].append(node)
    ops = sorted({op for op, _ in groups if op not in SPECIAL})
    palette = {op: _OP_COLOURS[i % len(_OP_COLOURS)] for i, op in enumerate(ops)}
    sizes = _sizes(list(pos), shapes)
    labelled = len({x for x, _ in pos.values()}) <= _LABEL_ROOM
    for (op, gated), nodes in sorted(groups.items()):
        colour, symbol = SPECIAL.get(op, (palette.get(op), "diamond" if gated else "circle"))
        fig.add_scatter(
            x=[pos[n][0] for n in nodes],
            y=[pos[n][1] for n in nodes],
            mode="markers+text" if labelled else "markers",
            meta="node",
            name=f"{op} (gated branch)" if gated and op not in SPECIAL else op,
            customdata=nodes,
            hovertext=[_hover(graph, n, shapes[n], costs[n], owners.get(n, [])) for n in nodes],
            # The label under each node: its op and width, what differs along a network.
            text=[f"{op}<br>{width_text(shapes[n])}" for n in nodes],
            textposition="bottom center",
            textfont={"size": 9, "color": "#555"},
            hovertemplate="%{hovertext}<extra></extra>",
            marker={
                "color": colour,
                "symbol": symbol,
                "size": [sizes[n] + (5 if op in SPECIAL else 0) for n in nodes],
                "line": {"color": "#ff7f0e" if gated else "#444", "width": 2 if gated else 1},
            },
        )
    widest = max(Counter(x for x, _ in pos.values()).values())
    # Tall enough for the legend (one line per op) and for the widest layer's nodes.
    styled(fig, title=title, x="", y="", height=min(900, max(420, 140 + 50 * widest)))
    fig.update_xaxes(visible=False)
    heights = [y for y in ys if y is not None] + [y for _, y in pos.values()]
    low, high = min(heights), max(heights)
    fig.update_yaxes(visible=False, range=[low - 1, high + 1])  # a margin around arcs
    return fig


def graph_title(where: str, graph: NetGraph) -> str:
    """``"run: graph.json (12 nodes, 5,178 parameters, 0.16 MFLOP per sample)"``."""
    return (
        f"{where} ({len(graph)} nodes, {graph.num_params():,} parameters, "
        f"{2 * graph.macs() / 1e6:.3g} MFLOP per sample)"
    )
