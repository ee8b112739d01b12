"""Take a network out of grownet: load any run's model, or export it for use without grownet.

:func:`load_model` reads a run (or a graph file) and returns grownet's executor holding its
weights, in eval mode and planned for inference. :func:`export_model` writes, into a folder:

``model.py`` + ``weights.pt``
    a standalone ``nn.Module`` class ``Net`` that imports only torch
    (:mod:`grownet.graph.standalone`) and its plain state dict:
    ``Net().load_state_dict(torch.load("weights.pt", weights_only=True))``;
``model.pt2``
    a ``torch.export`` program of ``Net`` in eval mode, batch size free
    (``torch.export.load("model.pt2").module()``);
``model.onnx``
    the same program as ONNX, when the ``onnx`` and ``onnxscript`` packages are installed
    (``pip install 'grownet[onnx]'``); otherwise it is skipped, saying so.

The files are written into a temporary folder beside the output, and each is run on a random
batch and compared with grownet's executor in eval mode before that folder takes the output's
name: a file that computes something else is never left behind.

What can be read (``path``):

- a run directory holding ``model/`` (``graph.json``, ``weights.pt``, ``config.json``);
- a directory holding ``graph.json`` and ``weights.pt`` (a growth search's run directory);
- a training run directory holding ``checkpoint.pt`` (``grownet train``, a study's trial,
  a recipe's case): the checkpoint's graph and weights, mixed as at its last step;
- a checkpoint file, or a graph ``.json`` file with ``weights`` (a state dict file or a
  checkpoint); without them, the graph's fresh initialisation.

Every file is read with ``torch.load(weights_only=True)``: nothing in it runs. A gradual
DropIn or width DropIn still mixing is taken at its ratio at the checkpoint's last step; a graph
file with weights does not record an iteration, so give it (``iteration``), or collapse the
mixers first. A run trained with DropIns held at a fixed ratio (the points of a search's DropIn
ratio sweep) is taken at that ratio, which its checkpoint records; ``dropin_q`` overrides it.

Example:
    >>> import tempfile, torch
    >>> from grownet.zoo import convnet
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = convnet(widths=(4,)).to_json(folder / "graph.json")
    >>> net = load_model(folder / "graph.json")  # no weights: its fresh initialisation
    >>> net(torch.randn(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    >>> result = export_model(folder / "graph.json", folder / "export", onnx=False)
    >>> sorted(result.files)
    ['model.pt2', 'model.py', 'weights.pt']
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from grownet.errors import BadValueError, DataFileError
from grownet.files import OutputError, atomic_save, atomic_write_text
from grownet.graph.executor import GraphNet, growing_norm
from grownet.graph.netgraph import NetGraph
from grownet.graph.ops import NORMS
from grownet.graph.plan import StepPlan
from grownet.graph.spec import GraphError
from grownet.graph.standalone import standalone_source
from grownet.layers import gradual_q
from grownet.train import checkpoint

__all__ = ["ExportResult", "Loaded", "export_model", "load_model", "read_model"]

FILES = ("model.py", "weights.pt", "model.pt2", "model.onnx")
ONNX_EXTRA = "pip install 'grownet[onnx]'"
_BATCH = 4  # the batch each export is checked on (not 0 or 1, which torch.export specializes)

@dataclass
class Loaded:
    """A network as read from disk, before anything is built from it.

    ``state`` is the executor's state dict, None for the graph's fresh initialisation;
    ``iteration`` the training iteration its mixers are taken at (None: not recorded);
    ``origin`` says in words what was read; ``inputs`` are the files read; ``dropin_q`` the
    DropIn ratios the run held fixed (a ratio sweep's point), as its checkpoint records them.
    """

    graph: NetGraph
    state: dict[str, Tensor] | None
    iteration: int | None
    origin: str
    inputs: tuple[Path, ...]
    weights_file: Path | None = None
    dropin_q: dict[str, float] = field(default_factory=dict)


@dataclass
class ExportResult:
    """What :func:`export_model` wrote: ``files`` (names in ``out``), the largest absolute
    difference of each export from grownet's executor on the check batch, and why ONNX was
    skipped (empty when it was written)."""

    out: Path
    origin: str
    files: list[str]
    differences: dict[str, float]
    notes: list[str] = field(default_factory=list)
    onnx_skipped: str = ""
    fresh: bool = False


# --------------------------------------------------------------------------- reading


def _torch_load(path: Path, fix: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; an unreadable file is one line."""
    if not path.is_file():
        problem = "is a directory" if path.is_dir() else "does not exist"
        raise DataFileError(path, f"{problem}; {fix}")
    return checkpoint.read_torch_file(path, what="weights file", fix=fix)


def _read_weights(path: Path) -> tuple[dict[str, Tensor], int | None]:
    """A state dict file's tensors, or a checkpoint's model and iteration."""
    fix = "give a state dict saved with torch.save, or a grownet checkpoint.pt"
    payload = _torch_load(path, fix)
    if isinstance(payload, dict) and payload.get("format") == checkpoint.FORMAT:
        payload = checkpoint.load(path)
        return payload["model"], payload["iteration"]
    if not isinstance(payload, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in payload.items()
    ):
        raise DataFileError(path, f"holds a {type(payload).__name__}, not a state dict; {fix}")
    return dict(payload), None


def _read_graph(path: Path) -> NetGraph:
    if not path.is_file():
        raise DataFileError(path, "does not exist; give the graph .json file the weights go with")
    return NetGraph.from_json(path)  # its errors name the file


def _from_checkpoint(path: Path) -> Loaded:
    payload = checkpoint.load(path)
    try:
        graph = NetGraph.from_dict(payload["graph"])
    except GraphError as err:
        raise DataFileError(path, f"holds a malformed graph ({err}); {checkpoint.FIX}") from None
    # The plan of the run's last step: what its own evaluations used (Trainer.correctness).
    steps = int(payload["iteration"])
    origin = f"{path} (iteration {steps})"
    held = dict(payload.get("extra", {}).get("fixed_dropin_q") or {})
    return Loaded(graph, payload["model"], max(0, steps - 1), origin, (path,), path, held)


def _from_files(graph_file: Path, weights: Path, origin: str) -> Loaded:
    graph = _read_graph(graph_file)
    state, steps = _read_weights(weights)
    iteration = None if steps is None else max(0, steps - 1)
    return Loaded(graph, state, iteration, origin, (graph_file, weights), weights)


def read_model(path: str | os.PathLike, *, weights: str | os.PathLike | None = None) -> Loaded:
    """Read a run directory, a checkpoint or a graph file (see the module's docstring).

    Every mistake (a missing path, a folder that is not a run, a damaged file) is one
    :class:`~grownet.errors.UserError` line naming the path and the fix.
    """
    path = Path(path)
    if not path.exists():
        raise BadValueError(f"{path} does not exist; give a run directory or a graph .json file")
    if path.is_dir():
        if weights is not None:
            raise BadValueError(
                f"--weights goes with a graph .json file; the run directory {path} brings its own"
            )
        model = path / "model"
        if model.is_dir():
            return _from_files(model / "graph.json", model / "weights.pt", f"{model}/")
        if (path / "graph.json").is_file() and (path / "weights.pt").is_file():
            return _from_files(path / "graph.json", path / "weights.pt", f"{path}/")
        if (path / "checkpoint.pt").is_file():
            return _from_checkpoint(path / "checkpoint.pt")
        if (path / "graph.json").is_file():
            raise BadValueError(
                f"{path} holds graph.json but no weights (no weights.pt or checkpoint.pt: the "
                f"run saved none yet); train it further, or export {path / 'graph.json'} for "
                "its fresh initialisation"
            )
        raise BadValueError(
            f"{path} is not a grownet run: it holds no model/, graph.json or checkpoint.pt; "
            "give a run directory (runs/<name>) or a graph .json file"
        )
    if path.suffix == ".pt" and weights is None:
        return _from_checkpoint(path)
    if path.suffix != ".json":
        raise BadValueError(
            f"{path} is neither a run directory nor a graph .json file; give one of them"
        )
    if weights is None:
        graph = _read_graph(path)
        return Loaded(graph, None, 0, f"{path} (no weights)", (path,))
    return _from_files(path, Path(weights), f"{path} with weights {weights}")


# --------------------------------------------------------------------------- the executor


def _mixers_needing_q(graph: NetGraph) -> list[str]:
    """The nodes whose function follows a schedule: gradual DropIns, width DropIns and the
    norms of a group they widen."""
    return [
        n
        for n in graph.nodes_of("dropin", "width_dropin", *NORMS)
        if graph.op(n) == "width_dropin"
        or growing_norm(graph, n)
        or (graph.op(n) == "dropin" and graph.spec(n).params["mode"] == "gradual")
    ]


def _plan(loaded: Loaded, iteration: int | None, dropin_q: Mapping[str, float] | None) -> StepPlan:
    """The plan an inference runs under: each mixer at its ratio at ``iteration``."""
    fixed = {**loaded.dropin_q, **(dropin_q or {})}
    mixers = _mixers_needing_q(loaded.graph)
    for node, q in fixed.items():
        if node not in mixers:
            raise BadValueError(
                f"dropin_q: {node!r} is not a gradual dropin or width_dropin node of the graph"
            )
        if not (isinstance(q, int | float) and 0.0 <= q <= 1.0):
            raise BadValueError(f"dropin_q[{node!r}] must be in [0, 1], got {q!r}")
    if iteration is not None and (isinstance(iteration, bool) or iteration < 0):
        raise BadValueError(f"iteration (--iteration) must be an integer >= 0, got {iteration!r}")
    it = iteration if iteration is not None else loaded.iteration
    if it is None:
        needing = [n for n in mixers if n not in fixed]
        if needing:
            node = needing[0]
            raise GraphError(
                f"{loaded.origin}: node {node!r} ({loaded.graph.op(node)}) mixes by a ratio "
                "that changes with the training iteration, which a weights file does not "
                "record; give the iteration its weights were saved at (--iteration N), or "
                "collapse it first (grownet.search.grow.collapse_all)"
            )
        it = 0
    return StepPlan(iteration=it, dropin_q=fixed)


def _executor(loaded: Loaded, plan: StepPlan) -> GraphNet:
    net = GraphNet(loaded.graph)
    if loaded.state is not None:
        expected = net.state_dict()
        state = loaded.state
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
        for keys, what in ((missing, "lacks"), (unexpected, "has no layer for"),
                           (wrong, "has another shape for")):  # fmt: skip
            if keys:
                more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
                raise DataFileError(
                    loaded.weights_file or loaded.origin,
                    f"does not fit the graph: it {what} {keys[0]!r}{more}; give the weights "
                    "saved with this graph",
                )
        net.load_state_dict(state)
    net.set_plan(plan)
    return net.eval()


def load_model(
    path: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = None,
    iteration: int | None = None,
    dropin_q: Mapping[str, float] | None = None,
) -> GraphNet:
    """Any run's model as an ``nn.Module``: grownet's executor in eval mode, weights loaded.

    ``path`` is a run directory, a checkpoint or a graph file (``weights``: a state dict or
    checkpoint file for it); see the module's docstring. The executor is planned for
    inference: ``net(x)`` runs every layer, each mixer at its ratio at ``iteration`` (default:
    the checkpoint's last step) or as ``dropin_q`` holds it. Weights stay on the CPU.

    Example:
        >>> net = load_model("runs/digits")  # doctest: +SKIP
        >>> net(torch.randn(8, 1, 8, 8)).argmax(1)  # doctest: +SKIP
    """
    loaded = read_model(path, weights=weights)
    return _executor(loaded, _plan(loaded, iteration, dropin_q))


# --------------------------------------------------------------------------- exporting


def _mix(net: GraphNet, plan: StepPlan) -> dict[str, float]:
    """Each gradual mixer's ratio q under ``plan``, as the executor computes it."""
    mix = {}
    for node in _mixers_needing_q(net.graph):
        if net.graph.op(node) == "dropin":
            mix[node] = net.dropin_q(node, plan)
        else:
            p = net.graph.spec(node).params
            scheduled = gradual_q(plan.iteration, length=p["length"], start=p["start"])
            mix[node] = plan.dropin_q.get(node, scheduled)
    return mix


def _check_out(out: Path, loaded: Loaded, overwrite: bool) -> None:
    """Refuse, before any work, an output that would destroy something not named for it."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"-o {out}: is a file, not a directory; give a folder for the export")
    if out.is_dir():
        held = [n for n in ("graph.json", "checkpoint.pt", "model") if (out / n).exists()]
        if held:
            raise OutputError(
                f"-o {out}: holds a grownet run ({held[0]}), which an export never replaces; "
                "give a new or empty folder"
            )
        if any(out.iterdir()) and not overwrite:
            raise OutputError(
                f"-o {out}: the folder is not empty; give a new or empty folder, or --overwrite "
                f"to replace the export files in it ({', '.join(FILES)})"
            )
        inputs = {p.resolve() for p in loaded.inputs}
        clash = [name for name in FILES if (out / name).resolve() in inputs]
        if clash:
            raise OutputError(
                f"-o {out}: the export would replace {out / clash[0]}, which it reads; "
                "give another folder"
            )


def _onnx_missing() -> str:
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if not missing:
        return ""
    return f"ONNX skipped: {' and '.join(missing)} not installed ({ONNX_EXTRA})"


def _import_net(path: Path) -> type[nn.Module]:
    """The ``Net`` class of the ``model.py`` this module just generated."""
    spec = importlib.util.spec_from_file_location(f"grownet_export_{os.getpid()}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Net


def _check(name: str, got: Tensor, want: Tensor) -> float:
    """The largest absolute difference; a real mismatch is a bug in the export, not a mistake.
    Non-finite outputs (a diverged run's) must sit in the same places."""
    got, want = got.double(), want.double()
    finite = torch.isfinite(want)
    same_places = torch.equal(finite, torch.isfinite(got))
    diff = float((got - want)[finite].abs().max()) if finite.any() else 0.0
    scale = float(want[finite].abs().max()) if finite.any() else 0.0
    if not (same_places and diff <= 1e-4 * max(1.0, scale)):
        raise RuntimeError(f"{name} differs from grownet's executor by {diff:.3g}: an export bug")
    return diff


def example_batch(graph: NetGraph, generator: torch.Generator) -> Tensor:
    """A batch the exports are checked and traced on: token ids where the input feeds a token
    table (a language model), else values from N(0, 1)."""
    shape = (_BATCH, *graph.input_shape)
    tables = [n for n in graph.consumers(graph.input_node) if graph.op(n) == "embedding"]
    if tables:
        vocab = min(graph.spec(n).params["num_embeddings"] for n in tables)
        return torch.randint(0, vocab, shape, generator=generator)
    return torch.randn(shape, generator=generator)


def _write(folder: Path, loaded: Loaded, net: GraphNet, plan: StepPlan, onnx: bool) -> ExportResult:
    """Write every export into ``folder``, checking each against the executor."""
    code = standalone_source(loaded.graph, mix=_mix(net, plan), origin=loaded.origin)
    atomic_write_text(folder / "model.py", code.source)
    standalone = _import_net(folder / "model.py")()
    standalone.load_state_dict(code.state_dict(net.state_dict()))
    standalone.eval()
    generator = torch.Generator().manual_seed(0)
    example = example_batch(loaded.graph, generator)
    with torch.no_grad():
        want = net(example)
        differences = {"model.py": _check("model.py", standalone(example), want)}
    atomic_save(folder / "weights.pt", lambda f: torch.save(standalone.state_dict(), f))

    batch = {0: torch.export.Dim.AUTO}  # any batch size, where the ops allow it
    program = torch.export.export(standalone, (example,), dynamic_shapes=(batch,))
    atomic_save(folder / "model.pt2", lambda f: torch.export.save(program, f))
    with torch.no_grad():
        differences["model.pt2"] = _check("model.pt2", program.module()(example), want)
    files = ["model.py", "weights.pt", "model.pt2"]

    skipped = _onnx_missing() if onnx else "ONNX skipped: not asked for"
    if not skipped:
        try:
            data, difference = _onnx(program, example, want)
        except Exception as err:  # ONNX is optional: the other files stand without it
            problem = f"{type(err).__name__}: {checkpoint.first_line(err)}"
            skipped = f"ONNX skipped: torch's exporter gave no usable model ({problem})"
        else:
            atomic_save(folder / "model.onnx", lambda f: f.write(data))
            files.append("model.onnx")
            if difference is not None:
                differences["model.onnx"] = difference
    return ExportResult(folder, loaded.origin, files, differences, code.notes, skipped,
                        fresh=loaded.state is None)  # fmt: skip


def _onnx(program: Any, example: Tensor, want: Tensor) -> tuple[bytes, float | None]:
    """``program`` as ONNX bytes and, where onnxruntime is installed, its largest difference
    from the executor (None without it)."""
    onnx_program = torch.onnx.export(
        program, (example,), dynamo=True, external_data=False, verbose=False
    )
    data = onnx_program.model_proto.SerializeToString()
    if importlib.util.find_spec("onnxruntime") is None:
        return data, None
    import onnxruntime

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: example.numpy()})
    return data, _check("model.onnx", torch.from_numpy(output), want)


def _move_into(tmp: Path, out: Path, written: list[str]) -> None:
    """``tmp``'s files become ``out``'s: the whole folder at once when ``out`` is new, else
    file by file (each replaced whole), and an export file this run did not write goes."""
    if not out.exists():
        mask = os.umask(0)
        os.umask(mask)
        # mkdtemp's 0700 kept others out while model.py was imported; the export gets the
        # permissions a plain mkdir would give it
        tmp.chmod(0o777 & ~mask)
        os.rename(tmp, out)
        return
    for name in written:
        os.replace(tmp / name, out / name)
    for name in FILES:
        if name not in written:
            (out / name).unlink(missing_ok=True)  # stale: from an earlier export
    tmp.rmdir()


def export_model(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = None,
    iteration: int | None = None,
    dropin_q: Mapping[str, float] | None = None,
    overwrite: bool = False,
    onnx: bool = True,
) -> ExportResult:
    """Export the model at ``path`` into the folder ``out``: model.py, weights.pt, model.pt2
    and, when the packages are installed and ``onnx`` is true, model.onnx.

    ``out`` must be new or empty; with ``overwrite`` the export files in it are replaced and
    nothing else there is touched. A folder holding a run is never an output. ``weights``,
    ``iteration`` and ``dropin_q`` are as for :func:`load_model`. A graph no fixed module
    computes (see :mod:`grownet.graph.standalone`) raises :class:`GraphError`, before any file
    is written.
    """
    loaded = read_model(path, weights=weights)
    out = Path(out)
    _check_out(out, loaded, overwrite)
    plan = _plan(loaded, iteration, dropin_q)
    net = _executor(loaded, plan)
    standalone_source(loaded.graph, mix=_mix(net, plan))  # refusals before any folder is made
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"-o {out}: cannot create its folder ({err.strerror or err})") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".export", dir=out.parent))
    try:
        result = _write(tmp, loaded, net, plan, onnx)
        _move_into(tmp, out, result.files)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
        raise
    result.out = out
    return result
