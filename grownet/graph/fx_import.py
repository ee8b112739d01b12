"""Your own network: a user's ``nn.Module`` traced with ``torch.fx`` into a :class:`NetGraph`.

:func:`import_module` traces the module (``torch.fx.symbolic_trace``), turns every call the op
table can express into a node (convs, linear layers, batchnorms, ReLU and the other
activations, max / average / adaptive pools, flatten, adds, concats, dropout, identity) and
copies the weights into the state dict a :class:`GraphNet` of the graph loads
(``layers.<node>.<tensor>``). Node ids are torch.fx's names, which follow the module paths
(``layer1.0.conv1`` becomes ``layer1_0_conv1``), so a torchvision ResNet's nodes are named like
the zoo's.

All or nothing: every call it cannot express is listed in one :class:`GraphError` line, each
with where it is (module path or fx node name) and why, and nothing is returned. A converted
graph is checked once against the module itself (eval mode, a random batch), so a call the
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
cannot express: 1 (Softmax)
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import operator
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

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


def _flatten_dims(start: int, end: int) -> LayerSpec:
    _require(start == 1 and end == -1, f"start_dim={start}, end_dim={end} (only 1, -1)")
    return LayerSpec("flatten")


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
    nn.Flatten: lambda m: _flatten_dims(m.start_dim, m.end_dim),
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
_WEIGHTED = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d)

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


def _add(a: dict[str, Any]) -> LayerSpec:
    _require(a.get("alpha", 1) == 1, "alpha")
    return LayerSpec("add")


def _cat(a: dict[str, Any]) -> LayerSpec:
    _require(a.get("dim", 0) in (1, -3), f"dim={a.get('dim', 0)} (only the channels, 1)")
    return LayerSpec("concat")


def _dropout(a: dict[str, Any]) -> LayerSpec:
    # training=False at trace time (F.dropout(x, p, self.training) in eval) is an identity
    return (
        LayerSpec("dropout", p=a.get("p", 0.5))
        if a.get("training", True)
        else LayerSpec("identity")
    )


_FUNCTIONS: dict[Any, _Rule] = {
    operator.add: (("input", "other"), ("input", "other"), _add),
    operator.iadd: (("input", "other"), ("input", "other"), _add),
    torch.add: (("input", "other"), ("input", "other"), _add),
    torch.cat: (("tensors", "dim"), ("tensors",), _cat),
    torch.concat: (("tensors", "dim"), ("tensors",), _cat),
    torch.flatten: (
        ("input", "start_dim", "end_dim"),
        ("input",),
        lambda a: _flatten_dims(a.get("start_dim", 0), a.get("end_dim", -1)),
    ),
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
}
_METHODS: dict[str, _Rule] = {
    "add": (("self", "other"), ("self", "other"), _add),
    "add_": (("self", "other"), ("self", "other"), _add),
    "flatten": (
        ("self", "start_dim", "end_dim"),
        ("self",),
        lambda a: _flatten_dims(a.get("start_dim", 0), a.get("end_dim", -1)),
    ),
    "contiguous": (("self",), ("self",), lambda a: LayerSpec("identity")),
    **{m: (("self",), ("self",), _act_rule(k)[2]) for m, k in [
        ("relu", "relu"), ("relu_", "relu"), ("sigmoid", "sigmoid"), ("tanh", "tanh")]},
}  # fmt: skip
_SHAPE_METHODS = ("size", "dim")  # values about a tensor, read only by a view below


def _bind(node: fx.Node, names: Sequence[str]) -> dict[str, Any]:
    if len(node.args) > len(names) or set(node.kwargs) - set(names):
        raise _Unsupported("arguments")
    return {**dict(zip(names, node.args, strict=False)), **node.kwargs}


def _is_batch_size(value: Any) -> bool:
    """``x.size(0)`` or ``x.shape[0]``: the batch dimension of a traced tensor."""
    if not isinstance(value, fx.Node):
        return False
    if value.op == "call_method" and value.target == "size":
        return value.args[1:] == (0,) or value.kwargs == {"dim": 0}
    return (
        value.op == "call_function"
        and value.target is operator.getitem
        and value.args[1] == 0
        and isinstance(value.args[0], fx.Node)
        and value.args[0].op == "call_function"
        and value.args[0].target is getattr
        and value.args[0].args[1] == "shape"
    )


def _view_rule(node: fx.Node) -> tuple[LayerSpec, list[Any]]:
    """``x.view(x.size(0), -1)`` / ``reshape``: a flatten; any other view is not expressible."""
    dims = node.args[1:]
    if len(dims) == 1 and isinstance(dims[0], tuple | list):
        dims = tuple(dims[0])
    _require(len(dims) == 2 and _is_batch_size(dims[0]) and dims[1] == -1, "not (N, -1)")
    return LayerSpec("flatten"), [node.args[0]]


# --------------------------------------------------------------------------- converting


class _Importer:
    """One pass over a traced module's fx graph, collecting the graph and every problem."""

    def __init__(self, traced: fx.GraphModule, input_shape: Shape) -> None:
        self.traced = traced
        self.graph = NetGraph()
        self.state: dict[str, Tensor] = {}
        self.problems: list[str] = []
        self.ids: dict[fx.Node, str] = {}
        self.called: dict[str, str] = {}
        self.input_shape = input_shape

    def run(self) -> None:
        for node in self.traced.graph.nodes:
            try:
                self._node(node)
            except _Unsupported as err:
                self.problems.append(self._where(node, str(err)))

    def _where(self, node: fx.Node, why: str) -> str:
        if node.op == "call_module":
            what = f"{node.target} ({type(self.traced.get_submodule(node.target)).__name__}"
        elif node.op == "call_function":
            what = f"{node.name} ({getattr(node.target, '__name__', node.target)}"
        elif node.op == "call_method":
            what = f"{node.name} (.{node.target}()"
        else:
            what = f"{node.name} ({node.op} {node.target}"
        return f"{what}{', ' + why if why else ''})"

    def _node(self, node: fx.Node) -> None:
        if node.op == "placeholder":
            _require(not self.ids, "a second input")
            self.ids[node] = self.graph.add("input", LayerSpec("input", shape=self.input_shape))
        elif node.op == "output":
            out = node.args[0]
            _require(isinstance(out, fx.Node), "returns more than one tensor")
            self._add(node, LayerSpec("output"), [out], name="output")
        elif node.op == "call_module":
            module = self.traced.get_submodule(node.target)
            rule = _MODULES.get(type(module))
            _require(rule is not None, "")
            spec = rule(module)
            if isinstance(module, _WEIGHTED):
                first = self.called.setdefault(str(node.target), node.name)
                _require(first == node.name, "called a second time: shared weights")
            _require(len(node.args) == 1 and not node.kwargs, "extra arguments")
            name = self._add(node, spec, list(node.args))
            if name and isinstance(module, _WEIGHTED):
                for key, value in module.state_dict().items():
                    self.state[f"layers.{name}.{key}"] = value.detach().cpu().clone()
        elif node.op == "call_method" and node.target in _SHAPE_METHODS:
            return  # read by a view below; anything else reading it is reported there
        elif node.op == "call_method" and node.target in ("view", "reshape"):
            spec, inputs = _view_rule(node)
            self._add(node, spec, inputs)
        elif node.op in ("call_method", "call_function"):
            if node.target in (getattr, operator.getitem) and _shape_helper(node):
                return
            table = _METHODS if node.op == "call_method" else _FUNCTIONS
            rule = table.get(node.target)
            _require(rule is not None, "")
            names, tensors, make = rule
            args = _bind(node, names)
            inputs = [
                x
                for name in tensors
                for x in (args[name] if isinstance(args[name], list | tuple) else [args[name]])
            ]
            self._add(node, make(args), inputs)
        else:
            raise _Unsupported("")  # get_attr: a tensor the module holds outside a layer

    def _add(
        self, node: fx.Node, spec: LayerSpec, inputs: list[Any], name: str | None = None
    ) -> str | None:
        _require(all(isinstance(x, fx.Node) for x in inputs), "a constant operand")
        if any(x not in self.ids for x in inputs):
            return None  # an input was reported already: one entry per call, no cascade
        name = name or (node.name + "_" if node.name in _RESERVED else node.name)
        self.ids[node] = self.graph.add(name, spec, [self.ids[x] for x in inputs])
        return name


def _shape_helper(node: fx.Node) -> bool:
    """``x.shape`` or ``x.shape[i]``: read only to size a view."""
    return (node.target is getattr and node.args[1] == "shape") or (
        node.target is operator.getitem
        and isinstance(node.args[0], fx.Node)
        and node.args[0].target is getattr
    )


def _trace(module: nn.Module, what: str) -> fx.GraphModule:
    try:
        return fx.symbolic_trace(module)
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
    importer = _Importer(_trace(module, what), shape)
    importer.run()
    if importer.problems:
        count = len(importer.problems)
        calls = f"{count} call{'s' * (count > 1)} that grownet graphs cannot express"
        raise GraphError(f"cannot import {what}: {calls}: {'; '.join(importer.problems)}")
    graph = importer.graph
    try:
        graph.validate()
    except GraphError as err:
        raise GraphError(f"cannot import {what} with input shape {shape}: {err}") from None
    _check_same(module, graph, importer.state, shape, what)
    return graph, importer.state


def _check_same(
    module: nn.Module, graph: NetGraph, state: dict[str, Tensor], shape: Shape, what: str
) -> None:
    """The graph must compute what ``module`` does (eval mode, one random batch)."""
    net = GraphNet(graph).eval()
    own = net.state_dict()
    for key, value in state.items():
        if own[key].shape != value.shape:  # a linear layer takes any width: its weights do not
            node = key.split(".")[1]
            raise GraphError(
                f"cannot import {what} with input shape {shape}: layer {node!r} holds weights "
                f"{tuple(value.shape)}, the shape gives it {tuple(own[key].shape)}; check the "
                "input shape"
            )
    net.load_state_dict(state)
    ref = next(iter(module.parameters()), torch.empty(0))
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0), dtype=ref.dtype)
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
        spec.loader.exec_module(mod)
    else:
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))  # as `python -c` would find it
        try:
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
    if kwargs:
        try:
            inspect.signature(make).bind(**kwargs)
        except TypeError:
            raise GraphError(
                f"{ref}: {make.__name__}() takes no num_classes; drop --num-classes or add it"
            ) from None
        except ValueError:
            pass  # no signature to check (a builtin): let the call say
    module = make(**kwargs)
    if not isinstance(module, nn.Module):
        raise GraphError(f"{ref}: returned a {type(module).__name__}, not a torch nn.Module")
    return import_module(module, input_shape, name=ref.removeprefix(PREFIX))


def build_imported(spec: str, in_shape: Sequence[int], num_classes: int) -> NetGraph:
    """The model base ``import:MODULE:CALLABLE``: the user's network as a graph for a dataset.

    ``CALLABLE`` gets ``num_classes`` when it takes that argument; its network must then end in
    ``num_classes`` outputs. The imported weights are not used: a run trains the architecture
    (use :func:`import_callable` for the weights).

    >>> build_imported("import:torch.nn:Flatten", (1, 2, 2), 4).shapes()["output"]
    (4,)
    """
    try:
        takes = "num_classes" in inspect.signature(load_callable(spec)).parameters
    except (TypeError, ValueError):
        takes = False
    graph, _ = import_callable(spec, in_shape, num_classes if takes else None)
    out = graph.shapes()[graph.output_node]
    if out != (num_classes,):
        raise GraphError(
            f"{spec}: the network gives outputs of shape {out}, the data has {num_classes} "
            "classes; let the callable take num_classes"
        )
    return graph
