"""The answer trained to the end: the recommended network's final model, and ``model/``.

A sweep's or check's weights were fine-tuned for a few hundred iterations from a bigger
network's; they describe the search, not the architecture. The final model trains the
recommended architecture for a full budget from each start the spec asks for ("inherited":
the search's weights; "scratch": a fresh initialisation), keeps the one with the better
validation accuracy, and only then reads the test split, once for each. Under k-fold
cross-validation there is no validation split left to choose on: each start trains once on the
whole training set, evaluated only at its end, and "scratch" is chosen where it is asked for
(it owes nothing to one fold's weights; "inherited" starts from the first fold's).
``runs/<name>/model/`` holds what a user takes away: ``graph.json``, ``weights.pt``,
``config.json`` (the run's training settings and how the model was chosen) and
``dataset.json`` (the data's preprocessing; a table's encoding for
:func:`grownet.data.encoding.load_encoding`), loadable with
:func:`grownet.graph.export.load_model` and exportable with ``grownet export``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grownet.files import atomic_save
from grownet.search.runs import Echo, Measured, Trained, first, measure, train_run
from grownet.search.spec import SearchSpec
from grownet.search.workers import run_all
from grownet.train.rundir import RunDir


@dataclass
class FinalRun:
    """One start's final training: its run, and its test accuracy (read once)."""

    start: str
    run: Trained
    test: Measured

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "val_accuracy": self.run.accuracy if self.run.split == "val" else None,
            "split": self.run.split,
            "test_accuracy": self.test.accuracy,
            "n_test": self.test.n,
            "status": self.run.status,
            "run": str(self.run.path),
        }


def final_iters(spec: SearchSpec, stages_grown: int) -> int:
    """``[final] iters``, or the chosen network's own training budget: ``stage_iters`` for the
    base and for each stage it grew through."""
    return spec.final.iters or spec.growth.stage_iters * (stages_grown + 1)


def train_final(
    spec: SearchSpec,
    folder: Path,
    recommended: Trained,
    *,
    iters: int,
    echo: Echo,
    quiet: bool,
) -> tuple[list[FinalRun], FinalRun]:
    """Train ``recommended``'s network for ``iters`` from each of ``[final] starts`` in
    ``folder/<start>``; returns every run and the chosen one (best validation accuracy; the
    first start at a tie). Test accuracies are read after every run has trained."""
    folds = spec.folds
    # cross-validated: one run on the whole training set, evaluated once, at its end
    whole = {"folds": 0, "test_interval": iters} if folds else {}
    calls = []
    for start in spec.final.starts:
        echo(f"final model ({start} weights): {iters} iterations ...")
        init = first(recommended.state) if start == "inherited" else None
        calls.append(functools.partial(
            train_run, spec, folder / start, recommended.graph, iters=iters, init_state=init,
            quiet=quiet, **whole,
        ))  # fmt: skip
    # the starts do not wait on each other: in parallel under --workers
    runs = list(zip(spec.final.starts, run_all(calls), strict=True))
    if folds:
        starts = [start for start, _ in runs]
        best = starts.index("scratch") if "scratch" in starts else 0
    else:
        best = max(range(len(runs)), key=lambda i: (runs[i][1].accuracy, -i))
    done = [FinalRun(start, run, measure(spec, run.graph, run.state)) for start, run in runs]
    for f in done:
        how = ": trained on the whole training set from scratch" if folds else f" on {f.run.split}"
        picked = f" (chosen{how})" if f is done[best] else ""
        val = f"{f.run.split} {100 * f.run.accuracy:.2f} %, " if f.run.split == "val" else ""
        echo(f"final model ({f.start}): {val}test {100 * f.test.accuracy:.2f} %{picked}")
    return done, done[best]


def write_model(folder: RunDir, chosen: FinalRun, spec: SearchSpec, *, iters: int) -> Path:
    """``model/``: the chosen final network's graph, weights and config; returns its path."""
    model = folder.file("model")
    model.mkdir(exist_ok=True)
    run = chosen.run
    validated = run.split == "val"  # cross-validated, the final run had no validation split
    run.graph.to_json(model / "graph.json")
    atomic_save(model / "weights.pt", lambda f: torch.save(first(run.state), f))
    config = RunDir(run.path).read_json("config.json")
    # the data's description (a table's fitted encoding, the preprocessing): what a user needs
    # to feed the model new rows or images the way it was trained
    RunDir(model).write_json("dataset.json", RunDir(run.path).read_json("dataset.json"))
    RunDir(model).write_json(
        "config.json",
        {
            "search": spec.name,
            "start": chosen.start,
            "iters": iters,
            "chosen_on": "cross-validation (scratch)" if spec.folds else run.split,
            "val_accuracy": run.accuracy if validated else None,
            "test_accuracy": chosen.test.accuracy,
            "n_val": run.n_test if validated else None,
            "n_test": chosen.test.n,
            "params": run.graph.num_params(),
            "flops": 2 * run.graph.macs(),
            "run": str(run.path),
            "train": config,
        },
    )
    return model
