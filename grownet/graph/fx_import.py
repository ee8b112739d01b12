"""Your own network: a user's ``nn.Module`` traced with ``torch.fx`` into a :class:`NetGraph`.

:func:`import_module` traces the module with ``torch.fx`` (Swin's and MaxViT's attention
modules called as they are: :mod:`grownet.graph.fx_windows`), turns every call the op table can
express into a node (convs, linear layers, batchnorms, layer norms, ReLU and the other
activations, pools, adds and products, concats, views, permutes, chunks and indexing,
self-attention, window attention, Swin's patch merging, dropout, torchvision's stochastic
depth) and copies the weights into the state dict a :class:`GraphNet` of the graph loads
(``layers.<node>.<tensor>``); a tensor the module holds outside a layer (a layer scale, a class
token, a position embedding) becomes a ``param`` node holding it. Node ids are torch.fx's
names, which follow the module paths (``layer1.0.conv1`` becomes ``layer1_0_conv1``), so a
torchvision ResNet's nodes are named like the zoo's. Every torchvision classification network
imports.

The module is first run on meta tensors (shapes, no data) at two batch sizes: the sizes its
forward reads become static parameters (a view's target, a chunk's parts), and a call that
mixes samples is told apart from one that keeps the batch first.

All or nothing: every call it cannot express is counted in one :class:`GraphError` line, grouped
by what it calls and why, with where the first of each is, and nothing is returned. A converted
graph is checked once against the module itself (eval mode, a random sample), so a call the
importer misread cannot pass silently.

``MODULE:CALLABLE`` references (``grownet import`` and the model base ``import:MODULE:CALLABLE``)
import the user's own Python module and call ``CALLABLE()`` for the network:
:func:`import_callable` and :func:`build_imported`.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 10))
    >>> graph, state = import_module(net, (1, 6, 6))
    >>> graph.topological_order()
    ['input', '_0', '_1', '_2', '_3', 'output']
    >>> sorted(state)[:2]
    ['layers._0.bias', 'layers._0.weight']
    >>> import_module(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Softmax(dim=1)), (1, 6, 6))
    Traceback (most recent call last):
    ...
    grownet.graph.base.GraphError: cannot import Sequential: 1 call that grownet graphs \
cannot express: 1 Softmax [1]
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import operator
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torchvision.ops import stochastic_depth

from grownet.graph import fx_windows
from grownet.graph.executor import GraphNet
from grownet.graph.netgraph import NetGraph
from grownet.graph.ops import ACTIVATIONS
from grownet.graph.spec import GraphError, LayerSpec, Shape

__all__ = ["build_imported", "import_callable", "import_module", "load_callable"]

PREFIX = "import:"
_RESERVED = ("input", "output")


class _Unsupported(Exception):
    """One call the op table cannot express; the message says why (may be empty)."""


# --------------------------------------------------------------------------- values


def _int_or_pair(value: Any) -> int | list[int]:
    """PyTorch's ``3`` or ``(3, 3)`` as the op table writes it: an int when both agree."""
    if isinstance(value, int):
        return value
    a, b = (int(v) for v in value)
    return a if a == b else [a, b]


def _same_int(value: Any, what: str) -> int:
    pair = _int_or_pair(value)
    if not isinstance(pair, int):
        raise _Unsupported(f"{what}={tuple(value)} differs by axis")
    return pair


def _require(ok: bool, why: str) -> None:
    if not ok:
        raise _Unsupported(why)


# --------------------------------------------------------------------------- modules


def _conv(m: nn.Conv2d) -> LayerSpec:
    _require(m.padding_mode == "zeros", f"padding_mode={m.padding_mode!r}")
    padding = m.padding
    if isinstance(padding, str):
        # 'same' pads (k-1)*d/2 a side; expressible when that is whole and stride is 1
        total = [m.dilation[i] * (m.kernel_size[i] - 1) for i in range(2)]
        _require(padding == "valid" or all(t % 2 == 0 for t in total), "padding='same'")
        padding = (0, 0) if padding == "valid" else (total[0] // 2, total[1] // 2)
    return LayerSpec(
        "conv",
        out_channels=m.out_channels,
        kernel_size=_int_or_pair(m.kernel_size),
        stride=_int_or_pair(m.stride),
        padding=_int_or_pair(padding),
        dilation=_same_int(m.dilation, "dilation"),
        groups=m.groups,
        bias=m.bias is not None,
        init="default",
    )


def _linear(m: nn.Linear) -> LayerSpec:
    return LayerSpec("linear", out_features=m.out_features, bias=m.bias is not None, init="default")


def _batchnorm(m: nn.modules.batchnorm._BatchNorm) -> LayerSpec:
    _require(m.affine, "affine=False")
    _require(m.track_running_stats, "track_running_stats=False")
    _require(m.momentum is not None, "momentum=None (a cumulative average)")
    return LayerSpec("batchnorm", eps=m.eps, momentum=m.momentum)


def _maxpool(m: nn.MaxPool2d) -> LayerSpec:
    return _pool("maxpool", m.kernel_size, m.stride, m.padding, m.ceil_mode, m.dilation, False)


def _avgpool(m: nn.AvgPool2d) -> LayerSpec:
    _require(m.count_include_pad, "count_include_pad=False")
    _require(m.divisor_override is None, "divisor_override")
    return _pool("avgpool", m.kernel_size, m.stride, m.padding, m.ceil_mode, 1, False)


def _pool(op: str, kernel: Any, stride: Any, padding: Any, ceil: bool, dilation: Any,
          indices: bool) -> LayerSpec:  # fmt: skip
    _require(_int_or_pair(dilation) == 1, f"dilation={dilation}")
    _require(not indices, "return_indices=True")
    stride = kernel if stride is None or stride == [] or stride == () else stride
    return LayerSpec(
        op,
        kernel_size=_int_or_pair(kernel),
        stride=_int_or_pair(stride),
        padding=_int_or_pair(padding),
        ceil_mode=bool(ceil),
    )


def _adaptive(size: Any) -> LayerSpec:
    pair = (size, size) if isinstance(size, int) else tuple(size)
    _require(None not in pair, f"output_size={size} keeps an input size")
    return LayerSpec("adaptive_avgpool", output_size=_int_or_pair(pair))


def _layer_norm_module(m: nn.LayerNorm) -> LayerSpec:
    _require(len(m.normalized_shape) == 1, f"normalized over {len(m.normalized_shape)} dims")
    return LayerSpec(
        "layer_norm", eps=m.eps, affine=m.elementwise_affine, bias=m.bias is not None
    )


def _activation(kind: str) -> LayerSpec:
    return LayerSpec("relu") if kind == "relu" else LayerSpec("activation", kind=kind)


def _gelu(m: nn.GELU) -> LayerSpec:
    _require(m.approximate == "none", f"approximate={m.approximate!r}")
    return _activation("gelu")


def _leaky(m: nn.LeakyReLU) -> LayerSpec:
    _require(m.negative_slope == 0.01, f"negative_slope={m.negative_slope}")
    return _activation("leaky_relu")


def _elu(m: nn.ELU) -> LayerSpec:
    _require(m.alpha == 1.0, f"alpha={m.alpha}")
    return _activation("elu")


def _activation_rule(kind: str) -> Callable[[nn.Module], LayerSpec]:
    return lambda m: _activation(kind)


# Exact types: a subclass may change forward (torch.fx traces into those anyway).
_MODULES: dict[type[nn.Module], Callable[[Any], LayerSpec]] = {
    nn.Conv2d: _conv,
    nn.Linear: _linear,
    nn.BatchNorm2d: _batchnorm,
    nn.BatchNorm1d: _batchnorm,
    nn.MaxPool2d: _maxpool,
    nn.AvgPool2d: _avgpool,
    nn.AdaptiveAvgPool2d: lambda m: _adaptive(m.output_size),
    nn.LayerNorm: _layer_norm_module,
    nn.Dropout: lambda m: LayerSpec("dropout", p=m.p),
    nn.Identity: lambda m: LayerSpec("identity"),
    nn.ReLU: lambda m: _activation("relu"),
    nn.GELU: _gelu,
    nn.LeakyReLU: _leaky,
    nn.ELU: _elu,
    **{
        cls: _activation_rule(kind)
        for kind, cls in ACTIVATIONS.items()
        if kind not in ("gelu", "leaky_relu", "elu")
    },
}
_WEIGHTED = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d, nn.LayerNorm,
             nn.MultiheadAttention, *fx_windows.LEAVES)  # fmt: skip

# --------------------------------------------------------------------------- functions
# Each rule: the parameter names in order (to bind positional and keyword arguments alike:
# builtins such as torch.flatten have no signature to bind with), the tensor parameters, and
# the spec the other arguments make. Keyword defaults are the functions' own.

_Rule = tuple[tuple[str, ...], tuple[str, ...], Callable[[dict[str, Any]], LayerSpec]]


def _act_rule(kind: str) -> _Rule:
    return ("input", "inplace"), ("input",), lambda a: _activation(kind)


def _pool_rule(op: str) -> _Rule:
    names = ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
             "divisor_override") if op == "avgpool" else (
             "input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
             "return_indices")  # fmt: skip

    def make(a: dict[str, Any]) -> LayerSpec:
        _require(a.get("count_include_pad", True), "count_include_pad=False")
        _require(a.get("divisor_override") is None, "divisor_override")
        return _pool(op, a["kernel_size"], a.get("stride"), a.get("padding", 0),
                     a.get("ceil_mode", False), a.get("dilation", 1),
                     a.get("return_indices", False))  # fmt: skip

    return names, ("input",), make


def _dropout(a: dict[str, Any]) -> LayerSpec:
    # training=False at trace time (F.dropout(x, p, self.training) in eval) is an identity
    return (
        LayerSpec("dropout", p=a.get("p", 0.5))
        if a.get("training", True)
        else LayerSpec("identity")
    )


_FUNCTIONS: dict[Any, _Rule] = {
    F.adaptive_avg_pool2d: (
        ("input", "output_size"),
        ("input",),
        lambda a: _adaptive(a["output_size"]),
    ),
    F.max_pool2d: _pool_rule("maxpool"),
    F.avg_pool2d: _pool_rule("avgpool"),
    F.dropout: (("input", "p", "training", "inplace"), ("input",), _dropout),
    F.relu: _act_rule("relu"),
    torch.relu: _act_rule("relu"),
    F.relu6: _act_rule("relu6"),
    torch.sigmoid: _act_rule("sigmoid"),
    F.sigmoid: _act_rule("sigmoid"),
    torch.tanh: _act_rule("tanh"),
    F.tanh: _act_rule("tanh"),
    F.silu: _act_rule("silu"),
    F.hardswish: _act_rule("hardswish"),
    F.hardsigmoid: _act_rule("hardsigmoid"),
    **fx_windows.FUNCTIONS,
}
_METHODS: dict[str, _Rule] = {
    "contiguous": (("self",), ("self",), lambda a: LayerSpec("identity")),
    **{m: (("self",), ("self",), _act_rule(k)[2]) for m, k in [
        ("relu", "relu"), ("relu_", "relu"), ("sigmoid", "sigmoid"), ("tanh", "tanh")]},
}  # fmt: skip
_BATCHES = (2, 3)  # a value that differs between the two runs depends on the batch size


def _bind(node: fx.Node, names: Sequence[str]) -> dict[str, Any]:
    if len(node.args) > len(names) or set(node.kwargs) - set(names):
        raise _Unsupported("arguments")
    return {**dict(zip(names, node.args, strict=False)), **node.kwargs}


class _Recorder(fx.Interpreter):
    """Runs a traced module on meta tensors (shapes, no data), keeping every node's value.

    Layers run on meta views of their weights (``functional_call``), so nothing is computed
    or copied: a 600M-parameter network takes as long as a small one.
    """

    def __init__(self, module: fx.GraphModule) -> None:
        super().__init__(module)
        self.values: dict[fx.Node, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        self.values[n] = result = super().run_node(n)
        return result

    def get_attr(self, target: Any, args: Any, kwargs: Any) -> Any:
        value = super().get_attr(target, args, kwargs)
        return value.to("meta") if isinstance(value, Tensor) else value

    def call_module(self, target: Any, args: Any, kwargs: Any) -> Any:
        module = self.fetch_attr(target)
        tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
        meta = {name: t.to("meta") for name, t in tensors.items()}
        return torch.func.functional_call(module, meta, args, kwargs)


def _propagate(traced: fx.GraphModule, shape: Shape, dtype: torch.dtype,
               what: str) -> dict[fx.Node, tuple[Any, Any]]:  # fmt: skip
    """Every node's value at two batch sizes, on meta tensors.

    The sizes a forward reads (``x.shape``, ``x.size(1) // groups``, a ViT's shape asserts) are
    fixed numbers once the input shape is: knowing them turns a view's target, a chunk's parts
    or an index into static parameters, and two batch sizes tell the batch dimension apart from
    the rest (a view that folds the batch into another dimension is refused). Run in eval mode,
    so no batchnorm statistic changes.
    """
    modes = {m: m.training for m in traced.modules()}
    runs = []
    try:
        traced.eval()
        for batch in _BATCHES:
            recorder = _Recorder(traced)
            recorder.run(torch.empty(batch, *shape, dtype=dtype, device="meta"))
            runs.append(recorder.values)
    except Exception as err:  # the user's forward on this shape: any error is theirs
        first = (str(err).strip().splitlines() or [""])[0]
        raise GraphError(
            f"cannot import {what} with input shape {shape}: the module fails on it ({first}); "
            "check the input shape"
        ) from None
    finally:
        for m, training in modes.items():
            m.training = training
    return {n: (runs[0][n], runs[1][n]) for n in runs[0]}


def _keep_logits(traced: fx.GraphModule) -> None:
    """GoogLeNet and Inception return ``(logits, aux...)`` in training: keep the logits and drop
    the auxiliary classifiers, which only feed a training loss (in eval they return logits)."""
    out = next(n for n in traced.graph.nodes if n.op == "output")
    value = out.args[0]
    fields = getattr(getattr(value, "target", None), "_fields", ())
    if isinstance(value, fx.Node) and value.op == "call_function" and fields[:1] == ("logits",):
        out.args = (value.args[0],)
        traced.graph.eliminate_dead_code()
        traced.recompile()


def _tensor(value: Any) -> bool:
    return isinstance(value, Tensor)


def _tensors(value: Any) -> bool:
    return isinstance(value, tuple | list) and any(isinstance(v, Tensor) for v in value)


# Calls whose meaning depends on their operands' kinds or on the traced sizes: each names the
# _Importer method that converts it and its parameter names in order.
_ADD_NAMES = ("input", "other", "alpha")
_SPECIAL_FUNCTIONS: dict[Any, tuple[str, tuple[str, ...]]] = {
    **dict.fromkeys([operator.add, operator.iadd, torch.add], ("_sum", _ADD_NAMES)),
    **dict.fromkeys([operator.mul, operator.imul, torch.mul], ("_product", ("input", "other"))),
    **dict.fromkeys([torch.cat, torch.concat], ("_cat", ("tensors", "dim"))),
    torch.permute: ("_permute", ("input", "dims")),
    **dict.fromkeys([torch.transpose, torch.swapaxes], ("_transpose", ("input", "dim0", "dim1"))),
    torch.flatten: ("_reshape", ("input", "start_dim", "end_dim")),
    torch.reshape: ("_reshape", ("input", "shape")),
    torch.chunk: ("_split", ("input", "chunks", "dim")),
    torch.split: ("_split", ("tensor", "split_size_or_sections", "dim")),
    operator.getitem: ("_getitem", ("input", "index")),
    torch.mean: ("_mean", ("input", "dim", "keepdim")),
    F.layer_norm: ("_layer_norm", ("input", "normalized_shape", "weight", "bias", "eps")),
    stochastic_depth: ("_stochastic_depth", ("input", "p", "mode", "training")),
}
_SPECIAL_METHODS: dict[str, tuple[str, tuple[str, ...]]] = {
    **dict.fromkeys(["add", "add_"], ("_sum", _ADD_NAMES)),
    **dict.fromkeys(["mul", "mul_"], ("_product", ("input", "other"))),
    "permute": ("_permute", ("input", "*dims")),
    **dict.fromkeys(["transpose", "swapaxes"], ("_transpose", ("input", "dim0", "dim1"))),
    "flatten": ("_reshape", ("input", "start_dim", "end_dim")),
    **dict.fromkeys(["view", "reshape"], ("_reshape", ("input", "*shape"))),
    "expand": ("_expand", ("input", "*sizes")),
    "chunk": ("_split", ("input", "chunks", "dim")),
    "split": ("_split", ("input", "split_size", "dim")),
    "mean": ("_mean", ("input", "dim", "keepdim")),
}


class _Importer:
    """One pass over a traced module's fx graph, collecting the graph and every problem."""

    def __init__(
        self, traced: fx.GraphModule, input_shape: Shape, values: dict[fx.Node, tuple[Any, Any]]
    ) -> None:
        self.traced = traced
        self.values = values
        self.graph = NetGraph()
        self.state: dict[str, Tensor] = {}
        self.problems: list[tuple[str, str, str]] = []  # (call, why, where)
        self.ids: dict[fx.Node, str] = {}
        self.called: dict[str, str] = {}
        self.input_shape = input_shape
        # Values that are not graph nodes of their own: a tensor the module holds outside a
        # layer (get_attr), awaiting the call that makes it a ``param`` node; the parts of a
        # chunk or split, each a ``slice`` node once indexed (one node per part keeps the graph
        # a DAG of single-output nodes); a torchvision stochastic depth awaiting its residual
        # add, which becomes a ``gated_add`` (so a dropped branch is skipped, not masked).
        self.attrs: dict[fx.Node, Tensor] = {}
        self.used_attrs: set[int] = set()
        self.parts: dict[fx.Node, tuple[fx.Node, int, list[tuple[int, int]]]] = {}
        self.drop_paths: dict[fx.Node, tuple[fx.Node, float]] = {}
        self.attentions: set[fx.Node] = set()

    def run(self) -> None:
        for node in self.traced.graph.nodes:
            try:
                self._node(node)
            except _Unsupported as err:
                call, where = self._call(node)
                self.problems.append((call, str(err), where))

    def _call(self, node: fx.Node) -> tuple[str, str]:
        """What ``node`` calls and where it is, for the refusal."""
        if node.op == "call_module":
            return type(self.traced.get_submodule(node.target)).__name__, str(node.target)
        if node.op == "call_function":
            return getattr(node.target, "__name__", str(node.target)), node.name
        if node.op == "call_method":
            return f".{node.target}()", node.name
        return f"{node.op} {node.target}", node.name

    # ------------------------------------------------------------------ traced values

    def shape(self, node: Any) -> Shape:
        """One sample's shape of tensor ``node``, checking its first dimension is the batch."""
        _require(isinstance(node, fx.Node) and node not in self.attrs, "a constant operand")
        first, second = self.values[node]
        _require(_tensor(first) and first.dim() >= 2, "a tensor without per-sample dims")
        same = tuple(first.shape[1:]) == tuple(second.shape[1:])
        _require(same and (first.shape[0], second.shape[0]) == _BATCHES, "mixes samples")
        return tuple(first.shape[1:])

    def sample_dim(self, node: fx.Node, dim: int) -> int:
        """Batched dimension ``dim`` of ``node`` as a per-sample one; the batch is refused."""
        rank = len(self.shape(node)) + 1
        _require(isinstance(dim, int) and -rank <= dim < rank, f"dim={dim}")
        _require(dim % rank != 0, "acts on the batch dimension")
        return dim % rank - 1

    # ------------------------------------------------------------------ nodes

    def _node(self, node: fx.Node) -> None:
        value = self.values.get(node, (None, None))[0]
        if node.op == "placeholder":
            _require(not self.ids, "a second input")
            self.ids[node] = self.graph.add("input", LayerSpec("input", shape=self.input_shape))
        elif node.op == "output":
            out = node.args[0]
            _require(isinstance(out, fx.Node), "returns more than one tensor")
            self._add(node, LayerSpec("output"), [out], name="output")
        elif node.op == "get_attr":
            self.attrs[node] = self.traced.get_parameter(node.target) if _param(
                self.traced, node.target) else self.traced.get_buffer(node.target)  # fmt: skip
        elif not (_tensor(value) or _tensors(value)):
            return  # a size, a shape check: numbers the fixed input shape fixes
        elif node.op == "call_module":
            self._module(node)
        else:
            table = _SPECIAL_METHODS if node.op == "call_method" else _SPECIAL_FUNCTIONS
            special = table.get(node.target)
            if special is not None:
                method, names = special
                getattr(self, method)(node, self._args(node, names))
                return
            rules = _METHODS if node.op == "call_method" else _FUNCTIONS
            rule = rules.get(node.target)
            _require(rule is not None, "")
            names, tensors, make = rule
            args = _bind(node, names)
            inputs = [
                x
                for name in tensors
                for x in (args[name] if isinstance(args[name], list | tuple) else [args[name]])
            ]
            self._add(node, make(args), inputs)

    def _args(self, node: fx.Node, names: tuple[str, ...]) -> dict[str, Any]:
        """Bind ``node``'s arguments; a last name ``*rest`` takes the remaining positionals
        (``x.view(n, -1)`` and ``x.view((n, -1))`` alike)."""
        if names[-1].startswith("*"):
            rest = node.args[len(names) - 1:]
            if len(rest) == 1 and isinstance(rest[0], list | tuple):
                rest = tuple(rest[0])
            return {**dict(zip(names[:-1], node.args, strict=False)), names[-1][1:]: rest,
                    **node.kwargs}  # fmt: skip
        return _bind(node, names)

    def _module(self, node: fx.Node) -> None:
        module = self.traced.get_submodule(node.target)
        if isinstance(module, _WEIGHTED):
            first = self.called.setdefault(str(node.target), node.name)
            _require(first == node.name, "called a second time: shared weights")
        if type(module) is nn.Flatten:
            self._reshape(node, {"input": node.args[0]})
            return
        if type(module) is nn.TransformerEncoderLayer:
            self._encoder_layer(node, module)
            return
        weights = module.state_dict() if isinstance(module, _WEIGHTED) else {}
        dropout = 0.0  # of a window attention's output: a node after it
        if type(module) is nn.MultiheadAttention:
            spec, inputs = _attention(module, node), [node.args[0]]
            self.attentions.add(node)
        else:
            if type(module) in fx_windows.LEAVES:
                try:
                    spec, weights, dropout = fx_windows.leaf_layer(module)
                except ValueError as err:
                    raise _Unsupported(str(err)) from None
            else:
                rule = _MODULES.get(type(module))
                _require(rule is not None, "")
                spec = rule(module)
            _require(len(node.args) == 1 and not node.kwargs, "extra arguments")
            inputs = list(node.args)
        name = self._add(node, spec, inputs)
        for key, value in weights.items() if name else ():
            self.state[f"layers.{name}.{key}"] = value.detach().cpu().clone()
        if name and dropout:
            self.ids[node] = self.graph.add(f"{name}_dropout", LayerSpec("dropout", p=dropout),
                                            [name])  # fmt: skip

    def _encoder_layer(self, node: fx.Node, m: nn.TransformerEncoderLayer) -> None:
        """``nn.TransformerEncoderLayer`` (batch first, called without masks): its two residual
        units as graph nodes ``<call>_norm1``, ``_attn``, ``_add1``, ``_norm2``, ``_linear1``,
        ``_act``, ``_linear2``, ``_add2`` (and dropouts), pre- or post-norm as it is built."""
        _require(m.self_attn.batch_first, "batch_first=False")
        _require(len(node.args) == 1 and not node.kwargs, "a mask or other arguments")
        act = {1: "relu", 2: "gelu"}.get(m.activation_relu_or_gelu)
        _require(act is not None, "an activation other than relu or gelu")
        if node.args[0] not in self.ids:
            return  # its input was reported already
        base = node.name

        def add(part: str, spec: LayerSpec, inputs: list[str], weights: nn.Module | None = None
                ) -> str:  # fmt: skip
            name = self.graph.add(f"{base}_{part}", spec, inputs)
            for key, value in (weights.state_dict() if weights else {}).items():
                self.state[f"layers.{name}.{key}"] = value.detach().cpu().clone()
            return name

        def dropout(part: str, p: float, x: str) -> str:
            return add(part, LayerSpec("dropout", p=p), [x]) if p else x

        def attention(x: str) -> str:
            a = m.self_attn
            spec = LayerSpec("attention", heads=a.num_heads, p=a.dropout,
                             bias=a.in_proj_bias is not None)  # fmt: skip
            return dropout("dropout1", m.dropout1.p, add("attn", spec, [x], a))

        def mlp(x: str) -> str:
            h = add("linear1", _linear(m.linear1), [x], m.linear1)
            h = dropout("dropout", m.dropout.p, add("act", _activation(act), [h]))
            return dropout("dropout2", m.dropout2.p, add("linear2", _linear(m.linear2), [h],
                                                         m.linear2))  # fmt: skip

        def norm(part: str, x: str) -> str:
            layer = getattr(m, part)
            return add(part, _layer_norm_module(layer), [x], layer)

        x = self.ids[node.args[0]]
        if m.norm_first:
            x = add("add1", LayerSpec("add"), [x, attention(norm("norm1", x))])
            out = add("add2", LayerSpec("add"), [x, mlp(norm("norm2", x))])
        else:
            x = norm("norm1", add("add1", LayerSpec("add"), [x, attention(x)]))
            out = norm("norm2", add("add2", LayerSpec("add"), [x, mlp(x)]))
        self.ids[node] = out

    def _add(
        self, node: fx.Node, spec: LayerSpec, inputs: list[Any], name: str | None = None
    ) -> str | None:
        _require(all(isinstance(x, fx.Node) for x in inputs), "a constant operand")
        _require(not any(x in self.attrs for x in inputs), "a tensor held outside a layer")
        if any(x not in self.ids for x in inputs):
            return None  # an input was reported already: one entry per call, no cascade
        name = name or (node.name + "_" if node.name in _RESERVED else node.name)
        self.ids[node] = self.graph.add(name, spec, [self.ids[x] for x in inputs])
        return name

    def _alias(self, node: fx.Node, source: fx.Node) -> None:
        """``node`` computes what ``source`` does: no node of its own."""
        if source in self.ids:
            self.ids[node] = self.ids[source]

    # ------------------------------------------------------------------ special calls

    def _sum(self, node: fx.Node, a: dict[str, Any]) -> None:
        _require(a.get("alpha", 1) == 1, "alpha")
        x, y = a["input"], a["other"]
        for branch, shortcut in ((x, y), (y, x)):
            if branch in self.drop_paths:
                inner, p = self.drop_paths[branch]
                spec = LayerSpec("gated_add", kind="drop_path", drop_prob=p, mode="skip")
                self._add(node, spec, [inner, shortcut])
                return
            if branch in self.attrs:
                self._param(node, shortcut, branch, "add")
                return
        self._add(node, LayerSpec("add"), [x, y])

    def _product(self, node: fx.Node, a: dict[str, Any]) -> None:
        x, y = a["input"], a["other"]
        for held, other in ((x, y), (y, x)):
            if held in self.attrs:
                self._param(node, other, held, "mul")
                return
        self._add(node, LayerSpec("mul"), [x, y])

    def _param(self, node: fx.Node, x: fx.Node, held: fx.Node, mode: str) -> None:
        """A tensor the module holds outside a layer, combined with ``x``: a ``param`` node
        whose weight is that tensor with the batch dimension it may carry removed."""
        tensor = self.attrs[held].detach()
        _require(id(tensor) not in self.used_attrs, "a held tensor used twice: shared weights")
        rank = len(self.shape(x))
        if tensor.dim() == rank + 1:
            _require(tensor.shape[0] == 1, f"a held tensor of shape {tuple(tensor.shape)}")
            tensor = tensor[0]
        _require(tensor.dim() <= rank, f"a held tensor of shape {tuple(tensor.shape)}")
        tensor = tensor.reshape((1,) * (rank - tensor.dim()) + tuple(tensor.shape))
        flat = tensor.flatten()
        # A fresh graph starts its tensor as the module did: a constant (layer scale, a class
        # token) or noise of the tensor's spread (a position embedding)
        init = ({"value": float(flat[0])} if bool((flat == flat[0]).all())
                else {"init_std": float(flat.float().std())})  # fmt: skip
        spec = LayerSpec("param", shape=list(tensor.shape), mode=mode, **init)
        name = self._add(node, spec, [x])
        if name:
            self.used_attrs.add(id(self.attrs[held]))
            self.state[f"layers.{name}.weight"] = tensor.cpu().clone()

    def _cat(self, node: fx.Node, a: dict[str, Any]) -> None:
        tensors = list(a["tensors"])
        dim = a.get("dim", 0)
        live = next((t for t in tensors if t not in self.attrs), None)
        _require(live is not None, "only held tensors")
        _require(self.sample_dim(live, dim) == 0, f"dim={dim} (only each sample's first)")
        if len(tensors) == 2 and tensors[0] in self.attrs:
            self._param(node, tensors[1], tensors[0], "prepend")  # a class token
            return
        self._add(node, LayerSpec("concat"), tensors)

    def _expand(self, node: fx.Node, a: dict[str, Any]) -> None:
        """Expanding only the batch dimension: implicit in a graph (a ``param`` node
        broadcasts over the batch); any other expand is refused."""
        x = a["input"]
        first, second = self.values[node]
        if x in self.attrs:
            held = self.attrs[x]
            expected = [(b, *held.shape[1:]) for b in _BATCHES]
            _require(held.shape[0] == 1 and [tuple(first.shape), tuple(second.shape)] == expected,
                     "expands a held tensor beyond the batch")  # fmt: skip
            self.attrs[node] = held
            return
        _require(self.shape(node) == self.shape(x), "expands a sample")
        self._alias(node, x)

    def _permute(self, node: fx.Node, a: dict[str, Any]) -> None:
        x, dims = a["input"], list(a["dims"])
        rank = len(self.shape(x)) + 1
        _require(sorted(d % rank for d in dims) == list(range(rank)), f"dims={dims}")
        _require(dims[0] % rank == 0, "moves the batch dimension")
        self._reorder(node, x, [d % rank - 1 for d in dims[1:]])

    def _transpose(self, node: fx.Node, a: dict[str, Any]) -> None:
        x = a["input"]
        d0, d1 = self.sample_dim(x, a["dim0"]), self.sample_dim(x, a["dim1"])
        order = list(range(len(self.shape(x))))
        order[d0], order[d1] = order[d1], order[d0]
        self._reorder(node, x, order)

    def _reorder(self, node: fx.Node, x: fx.Node, dims: list[int]) -> None:
        if dims == sorted(dims):
            self._alias(node, x)
        else:
            self._add(node, LayerSpec("permute", dims=dims), [x])

    def _reshape(self, node: fx.Node, a: dict[str, Any]) -> None:
        """Any view, reshape or flatten that keeps the batch first: its target is the traced
        shape, so ``x.view(x.size(0), -1)`` and ``x.reshape(n, c // g, g, h, w)`` read alike."""
        x, out = a["input"], self.shape(node)
        if out == self.shape(x):
            self._alias(node, x)
        elif len(out) == 1:
            self._add(node, LayerSpec("flatten"), [x])
        else:
            self._add(node, LayerSpec("reshape", shape=list(out)), [x])

    def _split(self, node: fx.Node, a: dict[str, Any]) -> None:
        x = next(iter(a.values()))
        dim = self.sample_dim(x, a.get("dim", 0))
        bounds, start = [], 0
        for part in self.values[node][0]:
            bounds.append((start, start + part.shape[dim + 1]))
            start = bounds[-1][1]
        self.parts[node] = (x, dim, bounds)

    def _getitem(self, node: fx.Node, a: dict[str, Any]) -> None:
        base, index = a["input"], a["index"]
        if base in self.attentions:
            _require(index == 0, "reads the attention weights")
            self._alias(node, base)
        elif base in self.parts:
            x, dim, bounds = self.parts[base]
            start, stop = bounds[index]
            if (start, stop) == (0, self.shape(x)[dim]):
                self._alias(node, x)
            else:
                self._add(node, LayerSpec("slice", dim=dim, start=start, stop=stop), [x])
        else:
            self._index(node, base, index if isinstance(index, tuple) else (index,))

    def _index(self, node: fx.Node, x: fx.Node, index: tuple[Any, ...]) -> None:
        """``x[:, i]`` or ``x[:, a:b]``: one ``select`` or ``slice`` of one sample dimension."""
        shape = self.shape(x)
        whole = slice(None)
        _require(len(index) <= len(shape) + 1 and index[:1] == (whole,), f"index {index}")
        picked = [(d, i) for d, i in enumerate(index[1:]) if i != whole]
        _require(len(picked) <= 1, f"index {index}")
        if not picked:
            self._alias(node, x)
            return
        dim, i = picked[0]
        if isinstance(i, int) and -shape[dim] <= i < shape[dim]:
            self._add(node, LayerSpec("select", dim=dim, index=i % shape[dim]), [x])
            return
        _require(isinstance(i, slice), f"index {index}")
        kept = range(shape[dim])[i]
        _require(kept.step == 1 and len(kept) > 0, f"index {index}")
        self._add(node, LayerSpec("slice", dim=dim, start=kept.start, stop=kept.stop), [x])

    def _mean(self, node: fx.Node, a: dict[str, Any]) -> None:
        """A spatial mean of images is a global average pool; any other mean over each
        sample's dimensions (a transformer's tokens pooled) the ``mean`` op."""
        x, dims = a["input"], a.get("dim")
        dims = [dims] if isinstance(dims, int) else list(dims or ())
        rank = len(self.shape(x)) + 1
        _require(bool(dims) and all(-rank <= d < rank and d % rank for d in dims),
                 f"dim={a.get('dim')} (each sample's own dims; never the batch)")  # fmt: skip
        keep = a.get("keepdim", False)
        if rank == 4 and sorted(d % 4 for d in dims) == [2, 3]:
            spec = LayerSpec("adaptive_avgpool", output_size=1) if keep else LayerSpec(
                "global_avgpool")  # fmt: skip
        else:
            spec = LayerSpec("mean", dims=sorted(d % rank - 1 for d in dims), keepdim=keep)
        self._add(node, spec, [x])

    def _layer_norm(self, node: fx.Node, a: dict[str, Any]) -> None:
        """``F.layer_norm`` with tensors held outside a layer (ConvNeXt's LayerNorm2d)."""
        weight, bias = a.get("weight"), a.get("bias")
        _require(len(a["normalized_shape"]) == 1, "normalized over several dims")
        _require(all(t is None or t in self.attrs for t in (weight, bias)), "computed weights")
        _require(weight is not None or bias is None, "a bias without a weight")
        spec = LayerSpec("layer_norm", eps=a.get("eps", 1e-5), affine=weight is not None,
                         bias=bias is not None)  # fmt: skip
        name = self._add(node, spec, [a["input"]])
        for key, held in (("weight", weight), ("bias", bias)):
            if name and held is not None:
                self.state[f"layers.{name}.{key}"] = self.attrs[held].detach().cpu().clone()

    def _stochastic_depth(self, node: fx.Node, a: dict[str, Any]) -> None:
        users = list(node.users)
        adds = {target for target, (method, _) in _SPECIAL_FUNCTIONS.items() if method == "_sum"}
        _require(
            len(users) == 1 and (users[0].target in adds or users[0].target in ("add", "add_")),
            "not added to a shortcut",
        )
        self.drop_paths[node] = (a["input"], float(a["p"]))


def _param(module: nn.Module, target: str) -> bool:
    return target in dict(module.named_parameters())


def _attention(m: nn.MultiheadAttention, node: fx.Node) -> LayerSpec:
    """``attn(x, x, x)`` of a batch-first ``nn.MultiheadAttention``: self-attention."""
    q, k, v = (list(node.args) + [node.kwargs.get(n) for n in ("query", "key", "value")])[:3]
    _require(q is k is v and isinstance(q, fx.Node), "not self-attention (query, key, value)")
    extra = {k: v for k, v in node.kwargs.items() if k not in ("need_weights",)}
    _require(len(node.args) == 3 and not any(v is not None for v in extra.values()),
             "masks or other arguments")  # fmt: skip
    _require(m.batch_first, "batch_first=False")
    _require(m._qkv_same_embed_dim and m.bias_k is None and not m.add_zero_attn,
             "separate key/value sizes or extra key/value biases")  # fmt: skip
    return LayerSpec("attention", heads=m.num_heads, p=m.dropout, bias=m.in_proj_bias is not None)


def _trace(module: nn.Module, what: str) -> fx.GraphModule:
    try:
        tracer = fx_windows.Tracer()  # torch.fx's, with Swin's and MaxViT's attention as leaves
        graph = tracer.trace(module)
        return fx.GraphModule(tracer.root, graph, type(module).__name__)
    except Exception as err:  # tracing runs the user's forward: any error is theirs
        first = (str(err).strip().splitlines() or [""])[0]
        raise GraphError(
            f"torch.fx cannot trace {what}: {type(err).__name__}: {first} (data-dependent "
            "control flow or calls fx cannot follow); simplify its forward"
        ) from None


def import_module(
    module: nn.Module, input_shape: Sequence[int], *, name: str | None = None
) -> tuple[NetGraph, dict[str, Tensor]]:
    """``module`` as a :class:`NetGraph` and the state dict a :class:`GraphNet` of it loads.

    ``input_shape`` is one sample's shape, ``(C, H, W)`` or ``(F,)``. Raises one
    :class:`GraphError` line listing every call the op table cannot express (see the module
    docstring); ``name`` names the network in messages (default: its class).
    """
    what = name or type(module).__name__
    shape = tuple(input_shape)
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise GraphError(f"input shape must be positive integers (C,H,W or F), got {input_shape}")
    traced = _trace(module, what)
    _keep_logits(traced)
    dtype = next(iter(module.parameters()), torch.empty(0)).dtype
    importer = _Importer(traced, shape, _propagate(traced, shape, dtype, what))
    importer.run()
    if importer.problems:
        raise GraphError(f"cannot import {what}: {_refusal(importer.problems)}")
    graph = importer.graph
    try:
        shapes = graph.validate()
    except GraphError as err:
        raise GraphError(f"cannot import {what} with input shape {shape}: {err}") from None
    for node, graph_node in importer.ids.items():  # a misread call shows here, naming it
        traced_value = importer.values.get(node, (None,))[0]
        if _tensor(traced_value) and shapes[graph_node] != tuple(traced_value.shape[1:]):
            raise GraphError(
                f"the graph imported from {what} gives node {graph_node!r} the shape "
                f"{shapes[graph_node]}, the module {tuple(traced_value.shape[1:])}; please "
                "report this"
            )
    _check_same(module, graph, importer.state, shape, what)
    return graph, importer.state


def _refusal(problems: list[tuple[str, str, str]], most: int = 8) -> str:
    """One line: the calls grouped by what they call (and why), most frequent first, each with
    where the first one is, e.g. ``12 calls ...: 8 einsum [attn_0_einsum], 4 .roll() [roll]``."""
    groups = Counter((call, why) for call, why, _ in problems)
    first = {}
    for call, why, where in problems:
        first.setdefault((call, why), where)
    parts = [
        f"{count} {call}{f' ({why})' if why else ''} [{first[key]}{', ...' * (count > 1)}]"
        for key, count in groups.most_common(most)
        for call, why in [key]
    ]
    if len(groups) > most:
        parts.append(f"{len(groups) - most} more kinds")
    total = len(problems)
    return f"{total} call{'s' * (total > 1)} that grownet graphs cannot express: {', '.join(parts)}"


def _check_same(
    module: nn.Module, graph: NetGraph, state: dict[str, Tensor], shape: Shape, what: str
) -> None:
    """The graph must compute what ``module`` does (eval mode, one random batch)."""
    try:
        net = GraphNet.with_state(graph, state).eval()
    except GraphError as err:  # a linear layer takes any width: its weights do not
        raise GraphError(
            f"cannot import {what} with input shape {shape}: {err}; check the input shape"
        ) from None
    ref = next(iter(module.parameters()), torch.empty(0))
    # one sample: the meta runs at two batch sizes have shown that no call mixes samples
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0), dtype=ref.dtype)
    was_training = module.training
    try:
        with torch.no_grad():
            want = module.eval()(x.to(ref.device)).cpu()
            got = net.to(ref.dtype)(x)
    except RuntimeError as err:
        raise GraphError(f"cannot run {what} on input shape {shape}: {err}") from None
    finally:
        module.train(was_training)
    if want.shape != got.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
        raise GraphError(
            f"the graph imported from {what} computes something else than the module "
            f"(output {tuple(got.shape)} vs {tuple(want.shape)}); please report this"
        )


# --------------------------------------------------------------------------- references


@contextlib.contextmanager
def _user_code(where: str, what: str) -> Iterator[None]:
    """Run the user's own code: whatever it raises is their mistake, told in one line (the
    cause stays chained, for ``--debug``'s traceback)."""
    try:
        yield
    except (GraphError, ModuleNotFoundError):
        raise
    except Exception as err:
        detail = " ".join(str(err).split())[:200]
        raise GraphError(f"{where}: {what} raised {type(err).__name__}"
                         f"{': ' + detail if detail else ''}; fix it and rerun (--debug shows "
                         "where)") from err  # fmt: skip


def load_callable(ref: str) -> Callable[..., Any]:
    """``CALLABLE`` from ``MODULE:CALLABLE`` (a dotted module, or a ``.py`` file's path).

    The user's module is imported as their own code, from the working directory.

    >>> load_callable("torch.nn:Identity")
    <class 'torch.nn.modules.linear.Identity'>
    >>> load_callable("no_such_module_xyz:make")
    Traceback (most recent call last):
    ...
    grownet.graph.base.GraphError: no_such_module_xyz:make: no module named \
'no_such_module_xyz'; run from the folder that holds it or install it
    """
    source, _, attr = ref.removeprefix(PREFIX).rpartition(":")
    if not source or not attr:
        raise GraphError(f"{ref}: give MODULE:CALLABLE, e.g. mynets:make_net or nets.py:Net")
    where = f"{source}:{attr}"
    if source.endswith(".py"):
        path = Path(source)
        if not path.is_file():
            raise GraphError(f"{where}: file {source} does not exist")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        with _user_code(where, f"importing {source}"):
            spec.loader.exec_module(mod)
    else:
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))  # as `python -c` would find it
        try:
            with _user_code(where, f"importing {source}"):
                mod = importlib.import_module(source)
        except ModuleNotFoundError as err:
            raise GraphError(
                f"{where}: no module named {err.name!r}; run from the folder that holds it "
                "or install it"
            ) from None
    found = getattr(mod, attr, None)
    if not callable(found):
        raise GraphError(f"{where}: module {source} has no callable {attr!r}")
    return found


def import_callable(
    ref: str, input_shape: Sequence[int], num_classes: int | None = None
) -> tuple[NetGraph, dict[str, Tensor]]:
    """Call ``MODULE:CALLABLE`` (with ``num_classes=`` when given) and import its network."""
    make = load_callable(ref)
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    name = getattr(make, "__name__", "the callable")
    try:
        inspect.signature(make).bind(**kwargs)
    except TypeError as err:
        if kwargs and "num_classes" in str(err):
            raise GraphError(
                f"{ref}: {name}() takes no num_classes; drop --num-classes or add it"
            ) from None
        raise GraphError(f"{ref}: {name}() cannot be called with {kwargs or 'no arguments'} "
                         f"({err}); give defaults to its other arguments") from None  # fmt: skip
    except ValueError:
        pass  # no signature to check (a builtin): let the call say
    with _user_code(ref, f"{name}()"):
        module = make(**kwargs)
    if not isinstance(module, nn.Module):
        raise GraphError(f"{ref}: returned a {type(module).__name__}, not a torch nn.Module")
    return import_module(module, input_shape, name=ref.removeprefix(PREFIX))


def build_imported(spec: str, in_shape: Sequence[int], num_classes: int) -> NetGraph:
    """The model base ``import:MODULE:CALLABLE``: the user's network as a graph for a dataset.

    ``CALLABLE`` gets ``num_classes`` when it takes that argument (by name, or through
    ``**kwargs`` as torchvision's builders do); its network must then end in
    ``num_classes`` outputs. The imported weights are not used: a run trains the architecture
    (use :func:`import_callable` for the weights).

    >>> build_imported("import:torch.nn:Flatten", (1, 2, 2), 4).shapes()["output"]
    (4,)
    """
    try:
        params = inspect.signature(load_callable(spec)).parameters
    except (TypeError, ValueError):
        params = {}
    # torchvision's builders take num_classes through **kwargs
    takes = "num_classes" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())  # fmt: skip
    graph, _ = import_callable(spec, in_shape, num_classes if takes else None)
    out = graph.shapes()[graph.output_node]
    if out != (num_classes,):
        raise GraphError(
            f"{spec}: the network gives outputs of shape {out}, the data has {num_classes} "
            "classes; let the callable take num_classes"
        )
    return graph
