"""`NetGraph`: a network as a networkx DiGraph of typed layer specs.

Nodes are layer ids (strings) holding a :class:`LayerSpec` under the ``"spec"`` attribute;
an edge ``u -> v`` carries ``port``, the position of ``u`` among ``v``'s inputs. There is one
``input`` node and one ``output`` node. Shapes are inferred from the input node's shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from grownet.files import atomic_write_text
from grownet.graph.base import GRAPH_FORMAT
from grownet.graph.ops import INIT_KINDS, OPS
from grownet.graph.spec import GraphError, LayerSpec, Shape

_NODE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
FORMAT_VERSION = 1
# ops whose modules hold weights: validation checks their values without building them (a
# large token table takes long to initialise)
_WEIGHTED = ("conv", "linear", "batchnorm", "embedding", "layer_norm", "rms_norm")


@dataclass(frozen=True)
class NodeCost:
    """Per-sample parameter and forward multiply-accumulate counts of one node."""

    params: int
    macs: int


class NetGraph:
    """A thin, validated wrapper over :class:`networkx.DiGraph`.

    Example:
        >>> from grownet.graph import LayerSpec, NetGraph
        >>> g = NetGraph()
        >>> x = g.add("input", LayerSpec("input", shape=[1, 28, 28]))
        >>> x = g.add("conv1", LayerSpec("conv", out_channels=20, kernel_size=5), [x])
        >>> x = g.add("flat", LayerSpec("flatten"), [x])
        >>> x = g.add("fc", LayerSpec("linear", out_features=10), [x])
        >>> _ = g.add("output", LayerSpec("output"), [x])
        >>> g.shapes()["conv1"], g.num_params()
        ((20, 24, 24), 115730)
    """

    def __init__(self, graph: nx.DiGraph | None = None) -> None:
        self.nx = graph if graph is not None else nx.DiGraph()

    # ------------------------------------------------------------------ building

    def add(self, node: str, spec: LayerSpec, inputs: Sequence[str] = ()) -> str:
        """Add ``node`` fed by ``inputs`` (in port order); returns ``node`` for chaining."""
        if not isinstance(node, str) or not _NODE_ID.match(node):
            raise GraphError(
                f"node id {node!r} is not valid: use letters, digits, '_' or '-', "
                "starting with a letter or '_'"
            )
        if node in self.nx:
            raise GraphError(f"node {node!r} already exists; pick another id")
        if not isinstance(spec, LayerSpec):
            raise GraphError(f"node {node!r}: spec must be a LayerSpec, got {type(spec).__name__}")
        missing = [u for u in inputs if u not in self.nx]
        if missing:
            raise GraphError(f"node {node!r}: input {missing[0]!r} is not in the graph")
        if len(set(inputs)) != len(inputs):
            raise GraphError(f"node {node!r}: the same input appears twice in {list(inputs)}")
        self.nx.add_node(node, spec=spec)
        for port, u in enumerate(inputs):
            self.nx.add_edge(u, node, port=port)
        return node

    def set_spec(self, node: str, spec: LayerSpec) -> None:
        self._require(node)
        self.nx.nodes[node]["spec"] = spec

    def copy(self) -> NetGraph:
        g = nx.DiGraph()
        g.add_nodes_from((n, {"spec": d["spec"]}) for n, d in self.nx.nodes(data=True))
        g.add_edges_from((u, v, {"port": d["port"]}) for u, v, d in self.nx.edges(data=True))
        return NetGraph(g)

    # ------------------------------------------------------------------ reading

    def __contains__(self, node: object) -> bool:
        return node in self.nx

    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    @property
    def nodes(self) -> list[str]:
        return list(self.nx.nodes)

    def spec(self, node: str) -> LayerSpec:
        self._require(node)
        return self.nx.nodes[node]["spec"]

    def op(self, node: str) -> str:
        return self.spec(node).op

    def inputs(self, node: str) -> list[str]:
        """Predecessors of ``node`` in port order."""
        self._require(node)
        preds = sorted(self.nx.in_edges(node, data="port"), key=lambda e: e[2])
        return [u for u, _, _ in preds]

    def consumers(self, node: str) -> list[str]:
        self._require(node)
        return list(self.nx.successors(node))

    def nodes_of(self, *ops: str) -> list[str]:
        """Nodes whose op is one of ``ops``, in topological order."""
        return [n for n in self.topological_order() if self.op(n) in ops]

    @property
    def input_node(self) -> str:
        return self._single("input")

    @property
    def output_node(self) -> str:
        return self._single("output")

    @property
    def input_shape(self) -> Shape:
        return tuple(self.spec(self.input_node).params["shape"])

    def topological_order(self) -> list[str]:
        """Nodes in a deterministic topological order (insertion order breaks ties)."""
        position = {n: i for i, n in enumerate(self.nx.nodes)}
        try:
            return list(nx.lexicographical_topological_sort(self.nx, key=position.__getitem__))
        except nx.NetworkXUnfeasible:
            cycle = nx.find_cycle(self.nx)
            path = " -> ".join(u for u, _ in cycle) + f" -> {cycle[0][0]}"
            raise GraphError(f"the graph has a cycle: {path}; remove one of its edges") from None

    # ------------------------------------------------------------------ checking

    def validate(self) -> dict[str, Shape]:
        """Check structure and shapes; returns the inferred shape of every node."""
        self.input_node, self.output_node  # noqa: B018 - each raises if not exactly one
        order = self.topological_order()
        for node in order:
            self._check_ports(node)
        reach_out = nx.ancestors(self.nx, self.output_node) | {self.output_node}
        dangling = [n for n in order if n not in reach_out]
        if dangling:
            raise GraphError(
                f"node {dangling[0]!r} does not lead to the output; connect it or remove it"
            )
        reach_in = nx.descendants(self.nx, self.input_node) | {self.input_node}
        orphans = [n for n in order if n not in reach_in]
        if orphans:
            raise GraphError(f"node {orphans[0]!r} is not fed by the input; connect it")
        shapes = self.shapes()
        self._check_values(shapes)
        return shapes

    def _check_values(self, shapes: dict[str, Shape]) -> None:
        """Reject bad parameter values (a misspelt DropIn mode, ``length=0``) now, naming
        the node, rather than when the executor builds the modules."""
        for node in self.nx.nodes:
            spec = self.spec(node)
            if spec.op == "linear" and spec.params["tie"] is not None:
                self._check_tie(node, shapes)
            if spec.op in _WEIGHTED:
                if "init" in spec.params and spec.params["init"] not in INIT_KINDS:
                    raise GraphError(
                        f"node {node!r} ({spec.op}): unknown init {spec.params['init']!r}; "
                        f"use one of {', '.join(INIT_KINDS)}"
                    )
                continue
            ins = [shapes[u] for u in self.inputs(node)]
            try:
                OPS[spec.op].build(spec.params, ins)  # weight-free, so building is cheap
            except (ValueError, TypeError) as err:
                raise GraphError(f"node {node!r} ({spec.op}): {err}") from None

    def _check_tie(self, node: str, shapes: dict[str, Shape]) -> None:
        """A tied linear layer's weight is an embedding's table: same node kind and shape."""
        table = self.spec(node).params["tie"]
        if table not in self.nx or self.op(table) != "embedding":
            raise GraphError(f"node {node!r} (linear): tie must name an embedding node, "
                             f"got {table!r}")  # fmt: skip
        embed = self.spec(table).params
        weight = (self.spec(node).params["out_features"], shapes[self.inputs(node)[0]][-1])
        if weight != (embed["num_embeddings"], embed["out_features"]):
            raise GraphError(
                f"node {node!r} (linear): its weight {weight} cannot be embedding {table!r}'s "
                f"table ({embed['num_embeddings']}, {embed['out_features']})"
            )

    def shapes(self) -> dict[str, Shape]:
        """The per-sample output shape of every node, inferred from the input shape."""
        shapes: dict[str, Shape] = {}
        for node in self.topological_order():
            self._check_ports(node)
            spec = self.spec(node)
            ins = [shapes[u] for u in self.inputs(node)]
            try:
                shapes[node] = tuple(OPS[spec.op].infer(spec.params, ins))
            except GraphError as err:
                raise GraphError(f"node {node!r} ({spec.op}): {err}") from None
        return shapes

    def _check_ports(self, node: str) -> None:
        op = OPS[self.op(node)]
        n = self.nx.in_degree(node)
        ports = sorted(p for _, _, p in self.nx.in_edges(node, data="port"))
        if ports != list(range(n)):
            raise GraphError(f"node {node!r}: input ports {ports} are not 0..{n - 1}")
        if n < op.min_inputs or (op.max_inputs is not None and n > op.max_inputs):
            want = (
                str(op.min_inputs)
                if op.min_inputs == op.max_inputs
                else f"at least {op.min_inputs}"
                if op.max_inputs is None
                else f"{op.min_inputs} to {op.max_inputs}"
            )
            raise GraphError(f"node {node!r} ({op.name}) takes {want} inputs, got {n}")

    # ------------------------------------------------------------------ cost

    def costs(self) -> dict[str, NodeCost]:
        """Parameters and per-sample forward MACs of every node."""
        shapes = self.shapes()
        out: dict[str, NodeCost] = {}
        for node, shape in shapes.items():
            spec = self.spec(node)
            op = OPS[spec.op]
            ins = [shapes[u] for u in self.inputs(node)]
            out[node] = NodeCost(
                op.count_params(spec.params, ins, shape), op.count_macs(spec.params, ins, shape)
            )
        return out

    def num_params(self) -> int:
        return sum(c.params for c in self.costs().values())

    def macs(self) -> int:
        """Forward multiply-accumulates per sample (FLOPs = 2 × MACs)."""
        return sum(c.macs for c in self.costs().values())

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        """Node-link data, nodes in insertion order and edges sorted, so output is stable."""
        return {
            "format": GRAPH_FORMAT,
            "version": FORMAT_VERSION,
            "nodes": [{"id": n, **self.spec(n).to_dict()} for n in self.nx.nodes],
            "edges": [
                {"source": u, "target": v, "port": p}
                for v in self.nx.nodes
                for u, _, p in sorted(self.nx.in_edges(v, data="port"), key=lambda e: e[2])
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetGraph:
        """The graph :meth:`to_dict` wrote; a malformed one raises :class:`GraphError`.

        >>> NetGraph.from_dict({"format": "grownet.netgraph", "version": 1, "nodes": [{}]})
        Traceback (most recent call last):
        ...
        grownet.graph.base.GraphError: nodes[0] must be a mapping with 'id' and 'op', got {}
        """
        if not isinstance(data, dict) or data.get("format") != GRAPH_FORMAT:
            raise GraphError("not a grownet graph: expected 'format': 'grownet.netgraph'")
        if data.get("version") != FORMAT_VERSION:
            raise GraphError(
                f"graph format version {data.get('version')!r} is not supported "
                f"(this grownet reads version {FORMAT_VERSION})"
            )
        g = NetGraph()
        for i, item in enumerate(_list_of(data, "nodes", ("id", "op"))):
            node = item["id"]
            if not isinstance(node, str) or not _NODE_ID.match(node):
                raise GraphError(f"nodes[{i}]: 'id' {_short(node)} is not a valid node id")
            try:
                spec = LayerSpec.from_dict({k: v for k, v in item.items() if k != "id"})
            except GraphError as err:
                raise GraphError(f"node {node!r}: {err}") from None
            g.add(node, spec)  # its inputs are wired below, from the edges
        for e in _list_of(data, "edges", ("source", "target", "port")):
            for end in ("source", "target"):
                if not isinstance(e[end], str) or e[end] not in g.nx:
                    raise GraphError(f"edge {_short(e)} names unknown node {_short(e[end])}")
            if not isinstance(e["port"], int) or isinstance(e["port"], bool) or e["port"] < 0:
                raise GraphError(f"edge {_short(e)}: 'port' must be an integer >= 0")
            g.nx.add_edge(e["source"], e["target"], port=e["port"])
        return g

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            atomic_write_text(path, text + "\n")  # a run's graph.json is never torn
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> NetGraph:
        """Read a graph from a JSON string or a path to a JSON file.

        Every problem with a file (not UTF-8, empty, not JSON, not a graph) is one
        :class:`GraphError` line that starts with the file's name.
        """
        path = Path(source) if not str(source).lstrip().startswith("{") else None
        where = str(path) if path is not None else "graph JSON"
        try:
            text = path.read_text(encoding="utf-8") if path is not None else str(source)
        except FileNotFoundError:
            raise GraphError(f"graph file {source} does not exist") from None
        except UnicodeDecodeError as err:
            raise GraphError(
                f"{where}: not a text file (byte {err.start} is not UTF-8); "
                "give a graph JSON file as written by grownet"
            ) from None
        if not text.strip():
            raise GraphError(f"{where}: the file is empty; give a graph JSON file")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise GraphError(f"{where} is not valid JSON: {err.msg} at line {err.lineno}") from None
        except RecursionError:  # nesting too deep for the parser
            raise GraphError(f"{where} is not valid JSON: nested too deeply") from None
        try:
            return cls.from_dict(data)
        except GraphError as err:
            raise GraphError(f"{where}: {err}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NetGraph) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"NetGraph({len(self)} nodes, {self.nx.number_of_edges()} edges)"

    # ------------------------------------------------------------------ helpers

    def _require(self, node: str) -> None:
        if node not in self.nx:
            raise GraphError(f"node {node!r} is not in the graph")

    def _single(self, op: str) -> str:
        found = [n for n, d in self.nx.nodes(data=True) if d["spec"].op == op]
        if len(found) != 1:
            raise GraphError(f"a graph needs exactly one {op!r} node, found {len(found)}: {found}")
        return found[0]

    def chain(self, start: str, specs: Iterable[tuple[str, LayerSpec]]) -> str:
        """Append ``specs`` as a straight chain after ``start``; returns the last node."""
        last = start
        for node, spec in specs:
            last = self.add(node, spec, [last])
        return last


def _short(value: Any) -> str:
    """``repr(value)``, cut to fit an error message that a file's content ends up in."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _list_of(data: dict[str, Any], key: str, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """``data[key]``, checked to be a list of mappings that each hold ``fields``."""
    items = data.get(key)
    if not isinstance(items, list):
        raise GraphError(f"{key!r} must be a list, got {_short(items)}")
    for i, item in enumerate(items):
        if not isinstance(item, dict) or any(f not in item for f in fields):
            need = " and ".join(repr(f) for f in fields)
            raise GraphError(f"{key}[{i}] must be a mapping with {need}, got {_short(item)}")
    return items
