"""One training run inside a search: a Trainer run directory, resumed if it exists.

Every stage, sweep point and check of a search is an ordinary run directory (config, graph,
metrics, checkpoint), so the evidence is inspectable on its own and an interrupted search
picks up where it stopped: a finished run is read back, a half-done one resumes from its
checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from grownet.graph import NetGraph
from grownet.search.spec import SearchSpec
from grownet.train.trainer import Trainer
from grownet.train.verdict import INTERRUPTED

Echo = Callable[[str], None]


class SearchInterrupted(Exception):
    """The user stopped the search; what finished is kept and a rerun resumes."""


@dataclass
class Trained:
    """A finished run: its network, final weights (CPU) and per-sample correctness on the
    split that takes decisions (``split``: "val" under the search's protocol)."""

    graph: NetGraph
    state: dict[str, Tensor]
    accuracy: float
    correct: tuple[bool, ...]
    status: str
    wall_time_s: float
    path: Path
    split: str = "val"

    @property
    def n_test(self) -> int:
        """How many samples ``accuracy`` was measured on (the decision split's size)."""
        return len(self.correct)


def state_for(graph: NetGraph, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The entries of an executor's state dict that belong to nodes of ``graph``
    (keys are ``layers.<node>.<tensor>``): what a smaller network keeps of a bigger one."""
    nodes = set(graph.nodes)
    return {k: v for k, v in state.items() if k.split(".")[1] in nodes}


def train_run(
    spec: SearchSpec,
    path: Path,
    graph: NetGraph,
    *,
    iters: int,
    init_state: Mapping[str, Tensor] | None = None,
    fixed_q: Mapping[str, float] | None = None,
    quiet: bool = False,
) -> Trained:
    """Train ``graph`` for ``iters`` under the spec's [train] settings in run directory ``path``
    (resuming it if it exists); raises :class:`SearchInterrupted` on Ctrl-C."""
    config = spec.train_config(
        name=path.name,
        runs_dir=str(path.parent),
        max_iter=iters,
        quiet=quiet or spec.train.get("quiet", False),
    )
    trainer = Trainer(
        config,
        graph=graph,
        init_state=state_for(graph, init_state) if init_state is not None else None,
        fixed_dropin_q=fixed_q,
    )
    result = trainer.run(resume=True)
    if result.status == INTERRUPTED:
        raise SearchInterrupted(f"interrupted in {path}")
    correct = trainer.correctness()
    return Trained(
        graph=trainer.graph,
        state={k: v.detach().cpu().clone() for k, v in trainer.net.state_dict().items()},
        accuracy=float(correct.float().mean()),
        correct=tuple(bool(c) for c in correct.tolist()),
        status=result.status,
        wall_time_s=result.wall_time_s,
        path=path,
        split=trainer.eval_split,
    )


@dataclass(frozen=True)
class Measured:
    """A reported network's accuracy on one split, with the sample count behind it."""

    split: str
    accuracy: float
    n: int
    correct: tuple[bool, ...]

    def to_dict(self) -> dict[str, object]:
        return {"split": self.split, "accuracy": self.accuracy, "n": self.n}


def measure(
    spec: SearchSpec, graph: NetGraph, state: Mapping[str, Tensor], split: str = "test"
) -> Measured:
    """``graph`` holding ``state``'s weights evaluated on ``split`` ("test": the test split,
    read once per reported network after every decision; "eval": the decision split), without
    training (the spec's [train] device, batch and data settings)."""
    config = spec.train_config(name="evaluate", max_iter=1, quiet=True)
    trainer = Trainer(config, graph=graph, init_state=state_for(graph, state))
    flags = trainer.correctness(split)
    name = "test" if split == "test" else trainer.eval_split
    return Measured(name, float(flags.float().mean()), flags.numel(),
                    tuple(bool(c) for c in flags.tolist()))  # fmt: skip
