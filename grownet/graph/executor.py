"""The executor: a :class:`NetGraph` run as an ``nn.Module``, skipping work gates close.

Modules live in ``self.layers``, an ``nn.ModuleDict`` keyed by node id, so a state dict names
each tensor after its node and surgery can hand unchanged modules to the next executor.

Skipping work: before each step every gating node (``gated_add``, ``dropin``) says which of
its inputs the step needs. For each input edge of a gating node we precompute, once per graph,
its *exclusive branch*: the nodes whose every path to the output runs through that edge (the
edge post-dominates them). A closed edge's branch is left out of the step's schedule, so it
costs nothing forward or backward. Schedules are cached per set of closed edges. Execution is
a flat loop over a topological order: no Python recursion, so ResNet-1202 runs as easily as
LeNet.

``torch.compile``: :meth:`GraphNet.compile_segments` compiles the straight chains of plain
layers (a residual branch, a piece of trunk), never the gating. The loop above still decides
in Python, per step, which chains run, so plans that change every step reuse compiled code
instead of baking one draw in or recompiling (the pitfall of pytorch issue 95425).
"""

from __future__ import annotations

import functools
import hashlib
import json
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import torch
from torch import Tensor, nn

from grownet.graph.base import GraphError
from grownet.graph.netgraph import NetGraph
from grownet.graph.ops import NORMS, OPS
from grownet.graph.plan import StepPlan
from grownet.layers import gradual_q
from grownet.layers.width_dropin import width_dropin_weight

Edge = tuple[str, str]
_PLAIN, _DROPIN, _GATED, _PASS, _RELU_INPLACE, _MIXED_READ = 0, 1, 2, 3, 4, 5
# Producers that return a fresh tensor whose backward does not read it, so a ReLU that is their
# only consumer may overwrite it. An add is fresh only when it adds: a sum of one input, or a
# gated add whose branch a step skips, passes its input on (see _find_relu_rules).
_OUTPUT_NOT_SAVED = ("batchnorm", "conv", "linear", "add", "gated_add")
_SCHEDULE_CACHE_LIMIT = 4096  # 2**k gate patterns are possible; keep memory bounded


def exclusive_branches(graph: NetGraph) -> dict[Edge, frozenset[str]]:
    """For every input edge ``(u, g)`` of a gating node ``g``: the nodes only it serves.

    A node belongs to the branch of edge ``e`` when every path from it to the output passes
    through ``e``; those are exactly the nodes a step may skip when ``g`` does not need ``e``.
    Computed with one post-dominator tree over the graph with each gated edge split by a
    virtual node, so the cost is near-linear in the graph's size.
    """
    gated_edges = [(u, g) for g in graph.nodes if OPS[graph.op(g)].gating for u in graph.inputs(g)]
    if not gated_edges:
        return {}
    reverse = nx.DiGraph()
    reverse.add_nodes_from(graph.nodes)
    virtual = {edge: ("edge", *edge) for edge in gated_edges}
    for u, v in graph.nx.edges:
        if (u, v) in virtual:
            reverse.add_edge(v, virtual[(u, v)])
            reverse.add_edge(virtual[(u, v)], u)
        else:
            reverse.add_edge(v, u)
    root = graph.output_node
    idom = nx.immediate_dominators(reverse, root)
    children: dict[object, list[object]] = {}
    for node, parent in idom.items():
        if node != root:
            children.setdefault(parent, []).append(node)
    branches = {}
    for edge, vnode in virtual.items():
        found, stack = set(), list(children.get(vnode, ()))
        while stack:
            node = stack.pop()
            if isinstance(node, str):
                found.add(node)
            stack.extend(children.get(node, ()))
        branches[edge] = frozenset(found)
    return branches


def growing_norm(graph: NetGraph, node: str) -> bool:
    """Whether ``node`` is a norm handing new features over step by step (a width growth of
    its group): like a width DropIn, kept out of compiled chains, which would recompile at
    every unit handed over."""
    return graph.op(node) in NORMS and graph.spec(node).params["old"] > 0


def linear_chains(graph: NetGraph) -> list[tuple[str, ...]]:
    """The non-gating nodes, grouped into maximal straight chains, in topological order.

    In a chain each node after the first has one input, the node before it, whose only consumer
    it is: the chain is one function of its first node's inputs, and no other node reads its
    inner values. The input node and the gating nodes belong to no chain. A chain never crosses
    the edge of an exclusive branch (its inner edges are not gated), so a step runs all of a
    chain or none of it.

    Example:
        >>> from grownet.zoo import convnet
        >>> linear_chains(convnet(widths=(4,), batchnorm=False))
        [('conv1_1', 'relu1_1', 'pool1', 'gap', 'fc', 'output')]
    """
    chains: list[list[str]] = []
    chain_of: dict[str, int] = {}
    for node in graph.topological_order():
        if node == graph.input_node or OPS[graph.op(node)].gating or growing_norm(graph, node):
            continue
        ins = graph.inputs(node)
        if len(ins) == 1 and ins[0] in chain_of and graph.consumers(ins[0]) == [node]:
            # ins[0] has no other consumer, so it is still the last node of its chain
            chain_of[node] = chain_of[ins[0]]
            chains[chain_of[node]].append(node)
        else:
            chain_of[node] = len(chains)
            chains.append([node])
    return [tuple(chain) for chain in chains]


class _Segment(nn.Module):
    """A straight chain of modules run as one: the unit that ``torch.compile`` sees."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        super().__init__()
        self.chain = nn.ModuleList(modules)

    def forward(self, *xs: Tensor) -> Tensor:
        x = self.chain[0](*xs)
        for module in self.chain[1:]:
            x = module(x)
        return x


@functools.cache
def _segment_class(signature: str) -> type[_Segment]:
    """A subclass of ``_Segment`` whose ``forward`` has its own code object, one per signature.

    Dynamo keeps compiled versions per code object and falls back to eager after
    ``recompile_limit`` (8) of them: the many equal chains of a ResNet stage share one version,
    but a deep net has more than 8 different chains, which must not all share one code object.
    """
    base = _Segment.forward
    tag = hashlib.blake2b(signature.encode(), digest_size=6).hexdigest()
    code = base.__code__.replace(co_name=f"segment_{tag}")
    forward = types.FunctionType(code, base.__globals__, code.co_name)
    return type(f"_Segment_{tag}", (_Segment,), {"forward": forward})


@dataclass(frozen=True)
class _Step:
    node: str
    inputs: tuple[str | None, ...]  # None: a port this step does not need
    kind: int
    free: tuple[str, ...]  # values no later step reads


class GraphNet(nn.Module):
    """Runs a :class:`NetGraph`; ``forward(x, plan)`` follows a :class:`StepPlan`.

    Without a ``plan`` argument the last plan set with :meth:`set_plan` is used (initially
    iteration 0 with every gate open). In ``eval()`` mode every gate is open and each op applies
    its test-time rule (stochastic depth scales its branch by p_l; depth dropout does not
    rescale; gradual DropIn mixes at the plan's q, regularizing DropIn takes its expectation).

    Example:
        >>> import torch
        >>> from grownet.zoo import build
        >>> from grownet.graph.plan import Planner
        >>> graph = build("cifar_resnet", depth=20, depth_dropout=0.5)
        >>> net, planner = GraphNet(graph), Planner(graph, seed=0)
        >>> net(torch.randn(2, 3, 32, 32), planner.draw(0)).shape
        torch.Size([2, 10])
    """

    @classmethod
    def with_state(cls, graph: NetGraph, state: Mapping[str, Tensor]) -> GraphNet:
        """A network of ``graph`` holding ``state``'s tensors themselves (not copies), built
        without first initialising the weights it replaces: initialising a 600M-parameter ViT
        takes longer than importing it. ``state`` must hold every parameter and buffer; a
        tensor of another shape than the graph gives its layer raises :class:`GraphError`."""
        with torch.device("meta"):
            net = cls(graph)
        own = net.state_dict()
        for key, value in state.items():
            if key in own and own[key].shape != value.shape:
                raise GraphError(
                    f"layer {key.split('.')[1]!r} holds weights {tuple(value.shape)}, the graph "
                    f"gives it {tuple(own[key].shape)}"
                )
        net.load_state_dict(state, assign=True)  # strict: a missing tensor raises here
        net._tie_weights()  # assign gave each tied key its own tensor
        return net

    def __init__(self, graph: NetGraph, *, modules: Mapping[str, nn.Module] | None = None) -> None:
        super().__init__()
        self.shapes = graph.validate()
        self.graph = graph.copy()
        modules = modules or {}
        order = graph.topological_order()
        self.layers = nn.ModuleDict()
        for node in order:
            spec = graph.spec(node)
            if node in modules:
                self.layers[node] = modules[node]
            else:
                ins = [self.shapes[u] for u in graph.inputs(node)]
                self.layers[node] = OPS[spec.op].build(spec.params, ins)
        self._tied = {n: graph.spec(n).params["tie"] for n in order
                      if graph.op(n) == "linear" and graph.spec(n).params["tie"]}  # fmt: skip
        self._tie_weights()
        self.input_node, self.output_node = graph.input_node, graph.output_node
        kinds = {"dropin": _DROPIN, "gated_add": _GATED}
        self._nodes = [
            (n, tuple(graph.inputs(n)), kinds.get(graph.op(n), _PLAIN))
            for n in order
            if n != self.input_node
        ]
        self._order = self._nodes  # becomes one row per compiled chain in compile_segments
        self._gating = [(n, ins, kind) for n, ins, kind in self._nodes if kind != _PLAIN]
        self._dropin_schedule = {
            n: (graph.spec(n).params["length"], graph.spec(n).params["start"])
            for n, _, kind in self._gating
            if kind == _DROPIN
        }
        # Gradual width growth: these layers hold new units off by the plan's q (like DropIn),
        # and the norms of a widened group leave the same units out of their statistics.
        self._width_mixers = [
            n for n, _, _ in self._nodes if graph.op(n) == "width_dropin" or growing_norm(graph, n)
        ]
        # One-shot width sweeps: the plan may set these layers' retention step by step (a
        # norm's: the share of features its statistics read).
        self._width_dropouts = {n: graph.spec(n).params["retain"] for n, _, _ in self._nodes
                                if graph.op(n) in ("width_dropout", *NORMS)}  # fmt: skip
        self.branches = exclusive_branches(graph)
        self._schedules: dict[frozenset[Edge], list[_Step]] = {}
        # Compiled chains, keyed by their last node (whose value they produce). A plain dict,
        # not a ModuleDict: the layers stay owned by self.layers, so state dict keys do not
        # change and a layer is not saved twice.
        self._segments: dict[str, nn.Module] = {}
        self._members: dict[str, tuple[str, ...]] = {}
        self._compile_options: dict[str, Any] | None = None
        self._find_relu_rules()
        self._find_mixed_reads()
        self.plan = StepPlan()

    def _tie_weights(self) -> None:
        """Make each tied linear layer hold its embedding's table as its weight: one tensor,
        one gradient, counted once by ``parameters()`` (a reused or loaded module may have
        brought its own copy)."""
        for node, table in self._tied.items():
            self.layers[node].weight = self.layers[table].weight

    # ------------------------------------------------------------------ plan

    def set_plan(self, plan: StepPlan) -> None:
        """Use ``plan`` for the following forward calls that pass none."""
        self.plan = plan

    def dropin_q(self, node: str, plan: StepPlan) -> float:
        if node in plan.dropin_q:
            return plan.dropin_q[node]
        length, start = self._dropin_schedule[node]
        return gradual_q(plan.iteration, length=length, start=start)

    def closed_edges(self, plan: StepPlan) -> frozenset[Edge]:
        """The gated edges whose inputs this step does not need, under ``plan``."""
        closed = []
        for node, ins, kind in self._gating:
            module = self.layers[node]
            if kind == _DROPIN:
                needs = module.needs(
                    self.dropin_q(node, plan) if module.mode == "gradual" else None
                )
            else:
                skip = self.training and module.mode == "skip" and not plan.gates.get(node, True)
                needs = (not skip, True)
            closed.extend((ins[port], node) for port, need in enumerate(needs) if not need)
        return frozenset(closed)

    def skipped_nodes(self, plan: StepPlan) -> frozenset[str]:
        """The nodes a step under ``plan`` leaves out."""
        skipped: set[str] = set()
        for edge in self.closed_edges(plan):
            skipped |= self.branches[edge]
        return frozenset(skipped)

    def _schedule(self, closed: frozenset[Edge]) -> list[_Step]:
        cached = self._schedules.get(closed)
        if cached is not None:
            return cached
        skipped: set[str] = set()
        for edge in closed:
            skipped |= self.branches[edge]
        rows = []
        for node, ins, kind in self._order:
            members = self._members.get(node)
            if members is None:
                if node in skipped:
                    continue
            elif any(n in skipped for n in members):
                assert all(n in skipped for n in members), f"{members} crosses a gated edge"
                continue
            if node in self._mixed_reads:
                kind = _MIXED_READ
            elif node in self._mixed_reads.values():
                kind = _PASS  # its reader applies it to its weight
            elif kind == _PLAIN:
                kind = self._relu_kind(node, closed)
            else:
                ins = tuple(None if (u, node) in closed else u for u in ins)
            rows.append((node, ins, kind))
        last_use: dict[str, int] = {}
        for i, (_, ins, _) in enumerate(rows):
            for u in ins:
                if u is not None:
                    last_use[u] = i
        frees: dict[int, list[str]] = {}
        for u, i in last_use.items():
            frees.setdefault(i, []).append(u)
        schedule = [
            _Step(node, ins, kind, tuple(frees.get(i, ())))
            for i, (node, ins, kind) in enumerate(rows)
        ]
        if len(self._schedules) >= _SCHEDULE_CACHE_LIMIT:
            self._schedules.clear()
        self._schedules[closed] = schedule
        return schedule

    def _find_relu_rules(self) -> None:
        """Which ReLUs a step may run in place or leave out, and under which open or closed
        gated edge. Fixed by the graph and the compiled chains, so found once here (and again
        after compiling) rather than for every gate pattern a step draws."""
        self._inplace_relus: dict[str, Edge | None] = {}  # None: whatever the gates
        self._passable_relus: dict[str, Edge] = {}
        graph = self.graph
        for node, _, _ in self._order:
            if node in self._members or graph.op(node) != "relu":
                continue
            (source,) = graph.inputs(node)
            if self._owns(source, node):
                gated = graph.op(source) == "gated_add"
                self._inplace_relus[node] = (graph.inputs(source)[0], source) if gated else None
            if graph.op(source) == "gated_add":
                branch, shortcut = graph.inputs(source)
                if graph.op(shortcut) == "relu":
                    self._passable_relus[node] = (branch, source)

    def _find_mixed_reads(self) -> None:
        """Which width DropIns act on their reader's weight instead of their activations:
        those whose one consumer is an eagerly run conv (ungrouped) or linear layer. The
        reader is linear in its input channels, so this computes the same function and
        gradients (:func:`grownet.layers.width_dropin.width_dropin_weight`) for a pass over
        a weight instead of over an activation tensor."""
        self._mixed_reads: dict[str, str] = {}  # reader -> its width DropIn
        compiled = {n for chain in self._members.values() for n in chain}
        for node in self._width_mixers:
            consumers = self.graph.consumers(node)
            if self.graph.op(node) != "width_dropin" or self.graph.spec(node).params["span"]:
                continue  # a growing norm normalises; a span behind a concat stays a mixer
            if len(consumers) != 1 or {node, consumers[0]} & compiled:
                continue
            reader = self.layers[consumers[0]]
            if isinstance(reader, nn.Linear) or (
                isinstance(reader, nn.Conv2d) and reader.groups == 1
            ):
                self._mixed_reads[consumers[0]] = node

    def _mixed_read(self, node: str, x: Tensor) -> Tensor:
        reader, mixer = self.layers[node], self.layers[self._mixed_reads[node]]
        weight = width_dropin_weight(reader.weight, old=mixer.old, q=mixer.q,
                                     sources=mixer.sources)  # fmt: skip
        if isinstance(reader, nn.Linear):
            return nn.functional.linear(x, weight, reader.bias)
        return reader._conv_forward(x, weight, reader.bias)

    def _owns(self, source: str, relu: str) -> bool:
        """May ``relu`` overwrite ``source``'s output? Yes when that output is fresh, feeds
        nothing else and no backward reads it: a BatchNorm, conv or linear layer run eagerly,
        a sum of two or more inputs, or a gated add in a step that runs its branch (a compiled
        chain's output is left alone). In place saves a pass over memory and an allocation per
        ReLU, which on a CPU costs as much as the ReLU itself (the page faults of fresh
        memory)."""
        graph = self.graph
        return (
            graph.op(source) in _OUTPUT_NOT_SAVED
            and source not in self._members
            and graph.consumers(source) == [relu]
            and (graph.op(source) != "add" or len(graph.inputs(source)) > 1)
        )

    def _relu_kind(self, node: str, closed: frozenset[Edge]) -> int:
        """How plain node ``node`` runs in a step that closes ``closed``.

        A residual unit whose branch is skipped passes its shortcut on unchanged; when that is
        a ReLU's output (an identity shortcut after the previous unit's ReLU, or depth
        dropout's conv-BN-ReLU shortcut), the unit's own ReLU is the identity and is left out,
        forward and backward. Exact, gradients included: the earlier ReLU already zeroes the
        gradient wherever its output is 0.
        """
        passable = self._passable_relus.get(node)
        if passable is not None and passable in closed:
            return _PASS
        if node in self._inplace_relus:
            needs_open = self._inplace_relus[node]
            if needs_open is None or needs_open not in closed:
                return _RELU_INPLACE
        return _PLAIN

    # ------------------------------------------------------------------ compile

    def compile_segments(self, **compile_options: Any) -> int:
        """Compile each straight chain of two or more layers with ``torch.compile``.

        ``compile_options`` go to ``torch.compile`` (``backend``, ``mode``, ...). The gating is
        not compiled: ``forward`` still picks in Python which chains a step runs (see
        :func:`linear_chains`), so a plan that changes every step causes no recompilation.
        Chains of equal layers and input shapes share compiled code. The layers stay in
        ``self.layers``: the state dict is unchanged. Returns the number of compiled chains.

        Compile after replacing a layer by hand (:meth:`rebuilt` does so after surgery).

        Example:
            >>> import torch
            >>> from grownet.zoo import build
            >>> net = GraphNet(build("cifar_resnet", depth=8, depth_dropout=0.5))
            >>> net.compile_segments(backend="eager")  # stem, 3 branches, 2 pool-pads, head
            7
        """
        chains = [c for c in linear_chains(self.graph) if len(c) > 1]
        self._segments, self._members = {}, {}
        for chain in chains:
            segment = _segment_class(self._signature(chain))([self.layers[n] for n in chain])
            self._segments[chain[-1]] = torch.compile(segment, **compile_options)
            self._members[chain[-1]] = chain
        heads = {chain[0]: chain for chain in chains}
        inner = {n for chain in chains for n in chain[1:]}
        self._order = [
            (heads[n][-1], ins, kind) if n in heads else (n, ins, kind)
            for n, ins, kind in self._nodes
            if n not in inner
        ]
        self._find_relu_rules()
        self._find_mixed_reads()
        self._schedules.clear()
        self._compile_options = dict(compile_options)
        return len(chains)

    @property
    def compiled_chains(self) -> list[tuple[str, ...]]:
        """The chains :meth:`compile_segments` compiled (none before it is called)."""
        return list(self._members.values())

    def _signature(self, chain: tuple[str, ...]) -> str:
        """What makes two chains run the same code: their specs and input shapes."""
        rows = [
            [self.graph.spec(n).to_dict(), [list(self.shapes[u]) for u in self.graph.inputs(n)]]
            for n in chain
        ]
        return json.dumps(rows, sort_keys=True)

    # ------------------------------------------------------------------ run

    def forward(self, x: Tensor, plan: StepPlan | None = None) -> Tensor:
        plan = self.plan if plan is None else plan
        layers, segments = self.layers, self._segments
        for node in self._width_mixers:
            mixer = layers[node]
            scheduled = gradual_q(plan.iteration, length=mixer.length, start=mixer.start)
            mixer.q = plan.dropin_q.get(node, scheduled)
        for node, retain in self._width_dropouts.items():
            layers[node].retain = plan.retain.get(node, retain)
        values: dict[str, Tensor] = {self.input_node: x}
        for step in self._schedule(self.closed_edges(plan)):
            ins = [None if u is None else values[u] for u in step.inputs]
            module = segments.get(step.node)
            if module is None:
                module = layers[step.node]
            if step.kind == _PLAIN:
                out = module(*ins)
            elif step.kind == _PASS:
                out = ins[0]
            elif step.kind == _MIXED_READ:
                out = self._mixed_read(step.node, ins[0])
            elif step.kind == _RELU_INPLACE:
                out = torch.relu_(ins[0])
            elif step.kind == _DROPIN:
                q = self.dropin_q(step.node, plan) if module.mode == "gradual" else None
                out = module(ins[0], ins[1], q)
            else:
                out = module(ins[0], ins[1], plan.gates.get(step.node, True))
            values[step.node] = out
            for u in step.free:
                del values[u]
        return values[self.output_node]

    # ------------------------------------------------------------------ surgery support

    def rebuilt(
        self, graph: NetGraph, *, modules: Mapping[str, nn.Module] | None = None
    ) -> GraphNet:
        """An executor for ``graph`` that reuses every unchanged node's module.

        A node is unchanged when it has the same id, spec and input shapes as here; ``modules``
        supplies replacements built by surgery (e.g. a narrowed conv with its kept weights).
        New modules are moved to this executor's device and dtype; train/eval mode, the plan
        and compilation (:meth:`compile_segments`) carry over.
        """
        shapes = graph.validate()
        reuse = dict(modules or {})
        for node in graph.nodes:
            if node in reuse or node not in self.graph:
                continue
            same_spec = graph.spec(node) == self.graph.spec(node)
            same_inputs = [shapes[u] for u in graph.inputs(node)] == [
                self.shapes[u] for u in self.graph.inputs(node)
            ]
            if same_spec and same_inputs:
                reuse[node] = self.layers[node]
        net = GraphNet(graph, modules=reuse)
        reference = next(self.parameters(), None)
        if reference is not None:
            net.to(device=reference.device, dtype=reference.dtype)
        net.train(self.training)
        net.plan = self.plan
        if self._compile_options is not None:
            net.compile_segments(**self._compile_options)
        return net


def sync_optimizer(
    old: torch.optim.Optimizer, net: nn.Module, *, new_params_group: int = 0
) -> torch.optim.Optimizer:
    """A new optimizer of the same kind over ``net``'s parameters, keeping what it can.

    Parameters that survived surgery (the same ``Parameter`` objects) stay in their param group
    and keep their state (momentum buffers, Adam moments, step counts); new ones join group
    ``new_params_group`` and start fresh; removed ones are dropped. Each group keeps its live
    settings, so a learning rate a schedule changed carries over. An LR scheduler bound to the
    old optimizer must be re-created for the new one.
    """
    if not 0 <= new_params_group < len(old.param_groups):
        raise ValueError(
            f"new_params_group must index one of {len(old.param_groups)} groups, "
            f"got {new_params_group!r}"
        )
    group_of = {p: i for i, g in enumerate(old.param_groups) for p in g["params"]}
    members: list[list[nn.Parameter]] = [[] for _ in old.param_groups]
    for p in net.parameters():
        if p.requires_grad:
            members[group_of.get(p, new_params_group)].append(p)
    groups = [
        {**{k: v for k, v in g.items() if k != "params"}, "params": ps}
        for g, ps in zip(old.param_groups, members, strict=True)
        if ps
    ]
    new = type(old)(groups, **old.defaults)
    for ps in members:
        for p in ps:
            if p in old.state:
                new.state[p] = old.state[p]
    return new
