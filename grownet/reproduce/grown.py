"""Cases grown from another case: the network and weights a grown case starts from.

A recipe case with ``from = "<case>"`` starts where that case ended: its final weights, its
learning-rate schedule going on (``schedule_offset``), the same data. How the bigger network
takes the trained weights is the case's own:

- **deeper** (the case's network holds every layer of the source, plus new ones): the old
  layers keep their trained weights; a new layer starts from its filler
  (``new_layers = "filler"``, plain insertion as periodic growth does; with the network's
  gradual DropIn the new layers are mixed in as the DropIn paper does) or as the identity
  (``new_layers = "identity"``, Net2DeeperNet: a conv whose centre tap passes each channel
  through, a linear layer the identity matrix; function-preserving where no nonlinearity the
  source lacks follows it);
- **wider** (``widen = {init, length}``): every layer of the source the case's network has
  wider is widened to that width by :func:`grownet.search.widen_stage.widen_to` (random or
  Net2Net split), the new units mixed in over ``length`` iterations, or at once (0).

The source case is trained first if it has not been (in its own directory, where its own
trial reads it back), so a grown case's trial can run in any order and on any worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from grownet.errors import BadValueError
from grownet.files import exclusive_lock
from grownet.graph import GraphError, NetGraph
from grownet.graph.blocks import block_ends, residual_block, restacked_state, zero_start
from grownet.graph.coupling import group_of
from grownet.graph.executor import GraphNet
from grownet.reproduce.recipe import Case, Recipe
from grownet.reproduce.scale import shrink
from grownet.search.sweeps import sweep_units
from grownet.search.widen_stage import widen_to
from grownet.study.objective import StartInterrupted
from grownet.train.config import TrainConfig
from grownet.train.network import build_graph
from grownet.train.trainer import Trainer
from grownet.train.verdict import INTERRUPTED


def grown_start(
    recipe: Recipe,
    case: Case,
    config: TrainConfig,
    *,
    study_dir: Path,
    scale: str,
    overrides: dict[str, Any],
) -> tuple[NetGraph, dict[str, Tensor]]:
    """The network and weights grown case ``case`` (run under ``config``) starts from."""
    assert case.grow is not None
    grow = case.grow
    source_case = recipe.case(grow.source)
    source = recipe.config(source_case, scale=scale, **overrides, name=source_case.name,
                           runs_dir=str(study_dir))  # fmt: skip
    source.quiet, source.threads = config.quiet, config.threads
    # Another worker may be training the source: wait for it rather than fail on its lock.
    with exclusive_lock(study_dir / source_case.name / ".lock", wait=True):
        pass
    trainer = Trainer(source)
    if trainer.run(resume=True).status == INTERRUPTED:
        raise StartInterrupted(f"interrupted in {study_dir / source_case.name}")
    state = {k: v.detach().cpu().clone() for k, v in trainer.net.state_dict().items()}
    target = build_graph(config, trainer.dataset.in_shape, trainer.dataset.num_classes)
    where = f"{recipe.path} case {case.name!r}"
    if grow.widen_init is not None:
        length = shrink(grow.widen_length, scale)
        return _widened(trainer.graph, state, target, where, init=grow.widen_init,
                        length=length, seed=config.seed)  # fmt: skip
    return target, _deepened(trainer.graph, state, target, where, grow.new_layers, config.seed)


def _widened(
    source: NetGraph,
    state: dict[str, Tensor],
    target: NetGraph,
    where: str,
    *,
    init: str,
    length: int,
    seed: int,
) -> tuple[NetGraph, dict[str, Tensor]]:
    want = target.shapes()
    plans = []
    for unit in sweep_units(source):
        layer = unit[0]
        have = group_of(source, layer).width
        if layer not in want or want[layer][0] < have:
            raise BadValueError(f"{where}: cannot widen {layer!r} ({have} units) to the "
                                "case's network; it must hold the source's layers, as wide or "
                                "wider")  # fmt: skip
        if want[layer][0] > have:
            plans.append({"layer": layer, "from": have, "to": want[layer][0]})
    if not plans:
        raise BadValueError(f"{where}: widen, but no layer of the case's network is wider")
    graph, weights = widen_to(source, state, plans, length=length, init=init, seed=seed)
    shapes = graph.shapes()
    for node in target.nodes_of("conv", "linear"):
        if shapes.get(node) != want[node]:
            raise BadValueError(f"{where}: widening the source does not give the case's "
                                f"network at {node!r}; change its widths")  # fmt: skip
    return graph, weights


def _deepened(
    source: NetGraph,
    state: dict[str, Tensor],
    target: NetGraph,
    where: str,
    new_layers: str,
    seed: int,
) -> dict[str, Tensor]:
    missing = [n for n in source.nodes_of("conv", "linear", "batchnorm") if n not in target]
    if missing:
        raise BadValueError(f"{where}: the case's network lacks the source's layer "
                            f"{missing[0]!r}; a deeper network keeps every layer")  # fmt: skip
    if new_layers in STACKINGS:
        return _restacked(source, state, target, where, new_layers)
    if new_layers == "filler":
        return state  # the trainer initialises what the source lacks
    torch.manual_seed(seed)
    net = GraphNet(target)
    try:
        net.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise BadValueError(f"{where}: the source's weights do not fit the case's network: "
                            f"{str(err).splitlines()[-1].strip()}") from None  # fmt: skip
    with torch.no_grad():
        for node in target.nodes_of("conv", "linear"):
            if node not in source:
                _identity(net.layers[node], f"{where}: new layer {node!r}")
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


STACKINGS = ("stack", "middle", "zero")
UNITS = 2  # a transformer block: its attention and its MLP residual units


def stacking_order(kind: str, have: int, want: int) -> list[int | None]:
    """Which source block each of ``want`` blocks starts from, grown from ``have``: ``stack``
    repeats the stack (G_stack), ``middle`` copies the middle blocks in place (MIDAS-like),
    ``zero`` keeps the source's blocks first and starts the new ones (None) as the identity.

    >>> stacking_order("stack", 2, 4), stacking_order("middle", 2, 4)
    ([0, 1, 0, 1], [0, 0, 1, 1])
    >>> stacking_order("middle", 4, 6), stacking_order("zero", 2, 3)
    ([0, 1, 1, 2, 2, 3], [0, 1, None])
    """
    if kind == "stack":
        return [k % have for k in range(want)]
    if kind == "zero":
        return [*range(have), *[None] * (want - have)]
    new = want - have
    if new >= have:
        copies = [k % have for k in range(new)]
    else:  # the new blocks copy the ones around the middle
        first = min(max(0, have // 2 - new // 2), have - new)
        copies = list(range(first, first + new))
    return sorted([*range(have), *copies])


def _restacked(
    source: NetGraph, state: dict[str, Tensor], target: NetGraph, where: str, kind: str
) -> dict[str, Tensor]:
    """A deeper transformer's start from a shallower one's blocks (see :func:`stacking_order`)."""
    try:
        have = len(block_ends(source, units=UNITS))
        ends = block_ends(target, units=UNITS)
        if len(ends) <= have:
            raise GraphError(f"the case's network has {len(ends)} blocks, the source {have}: "
                             "stacking grows")  # fmt: skip
        order = stacking_order(kind, have, len(ends))
        out = restacked_state(source, state, target, order, units=UNITS)
        for k in [k for k, i in enumerate(order) if i is None]:  # zero: the new blocks
            out.update(zero_start(target, residual_block(target, ends[k], units=UNITS).nodes))
    except GraphError as err:
        raise BadValueError(f"{where}: new_layers = {kind!r}: {err}") from None
    return out


def _identity(layer: nn.Module, where: str) -> None:
    """Make a new conv or linear layer pass its input through (Net2DeeperNet)."""
    weight = layer.weight
    if weight.shape[0] != weight.shape[1] or getattr(layer, "groups", 1) != 1:
        raise BadValueError(f"{where} maps {weight.shape[1]} to {weight.shape[0]} channels; "
                            "an identity needs as many in as out: "
                            'new_layers = "filler"')  # fmt: skip
    kernel = weight.shape[2:]
    if any(k % 2 == 0 for k in kernel):
        raise BadValueError(f"{where} has an even kernel {tuple(kernel)}; an identity needs "
                            'a centre tap: new_layers = "filler"')  # fmt: skip
    weight.zero_()
    centre = tuple(k // 2 for k in kernel)
    for c in range(weight.shape[0]):
        weight[(c, c, *centre)] = 1.0
    if layer.bias is not None:
        layer.bias.zero_()
