"""Which split a run's numbers are on: every label of the report asks here, and nowhere else.

A run evaluates on its validation split when it holds one out, else on its test split, and
logs each evaluation as ``"kind": "test"`` in ``metrics.jsonl`` either way, so a record
cannot say which. A growth search takes every decision on the validation split and reads the
test split once per reported network, after the decisions (:mod:`grownet.search.summary`).
What names a run's split, the first found:

=====================================  =========================================================
``search_summary.json`` ``protocol``   a finished search (``decisions``: "val" or "test")
``stages.jsonl`` ``split``             a search still growing
``dataset.json`` ``sizes``             any run: validation when ``sizes.val`` > 0 (a search's:
                                       its first stage's, ``stages/stage_0/dataset.json``)
nothing                                test: runs and searches from before the protocol
=====================================  =========================================================

Example:
    >>> from pathlib import Path
    >>> run = Run(path=Path("r"), label="r", dataset={"sizes": {"val": 500, "test": 1000}})
    >>> split_of(run), label(run, "error"), eval_samples(run)
    ('val', 'validation error', (500, 'dataset.json sizes'))
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from grownet.report.load import Run

WORDS = {"val": "validation", "test": "test"}  # the splits of load.SPLITS, as a reader says them


def word(split: Any) -> str:
    """The split as a reader names it: ``"val" -> "validation"``; anything unknown (a record
    from before the protocol has none) was on test."""
    return WORDS.get(split, "test")


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _sizes(run: Run) -> dict[str, Any] | None:
    for source in (run.dataset, run.stage_dataset):
        if isinstance(sizes := source.get("sizes"), dict):
            return sizes
    return None


def split_of(run: Run) -> str:
    """``"val"`` or ``"test"``: the split the run's evaluations (a search's decisions) read.

    Example:
        >>> from pathlib import Path
        >>> split_of(Run(path=Path("s"), label="s", search={"protocol": {"decisions": "val"}}))
        'val'
        >>> split_of(Run(path=Path("s"), label="s", stages=[{"stage": 0, "split": "val"}]))
        'val'
        >>> split_of(Run(path=Path("old"), label="old"))
        'test'
    """
    protocol = run.search.get("protocol")
    if isinstance(protocol, dict) and protocol.get("decisions") in WORDS:
        return protocol["decisions"]
    for stage in run.stages:
        if stage.get("split") in WORDS:
            return stage["split"]
    sizes = _sizes(run)
    return "val" if sizes is not None and _count(sizes.get("val")) else "test"


def label(run: Run, what: str) -> str:
    """``what`` (accuracy, error) with the run's split: ``"validation accuracy"``."""
    return f"{word(split_of(run))} {what}"


def named(splits: Iterable[Any], what: str) -> str:
    """``what`` with every split among ``splits`` (for an axis over several runs or trials):
    one split's name, or "validation or test" where they differ (then each hover names its
    own).

    Example:
        >>> named(["val", "val"], "error"), named(["test", "val"], "accuracy"), named([], "x")
        ('validation error', 'validation or test accuracy', 'test x')
    """
    found = {s if s in WORDS else "test" for s in splits} or {"test"}
    return f"{' or '.join(word(s) for s in WORDS if s in found)} {what}"


def common(runs: Iterable[Run], what: str) -> str:
    """``what`` with the split of every run in a figure (:func:`named`)."""
    return named((split_of(run) for run in runs), what)


def eval_samples(run: Run) -> tuple[int | None, str]:
    """How many samples the run's evaluations (a search's stage accuracies) were measured on,
    and where that was read; ``(None, "")`` when nothing says.

    A search's ``search_summary.json`` says it: ``n_val`` under the protocol (the decision
    split's count), ``n_test`` before it (when the decisions read test); a search still
    growing, its stages' ``n``; else the run's split size in ``dataset.json``.

    Example:
        >>> from pathlib import Path
        >>> new = {"protocol": {"decisions": "val"}, "n_val": 500, "n_test": 1000}
        >>> eval_samples(Run(path=Path("s"), label="s", search=new))
        (500, 'search_summary.json n_val')
        >>> eval_samples(Run(path=Path("s"), label="s", search={"n_test": 360}))
        (360, 'search_summary.json n_test')
        >>> eval_samples(Run(path=Path("r"), label="r", dataset={"sizes": {"val": 0, "test": 90}}))
        (90, 'dataset.json sizes')
        >>> eval_samples(Run(path=Path("r"), label="r"))
        (None, '')
    """
    split = split_of(run)
    # An old summary's n_test counted the decision split, whichever it was.
    for key in ("n_val", "n_test") if split == "val" else ("n_test",):
        if n := _count(run.search.get(key)):
            return n, f"search_summary.json {key}"
    for stage in run.stages:
        if n := _count(stage.get("n")):
            return n, "stages.jsonl n"
    sizes = _sizes(run)
    if sizes is not None and (n := _count(sizes.get(split))):
        return n, "dataset.json sizes"
    return None, ""


def samples_text(n: int | None, split: str) -> str:
    """``"500 validation samples"``; ``""`` when the count is unknown."""
    return f"{n:,} {word(split)} samples" if n else ""


def answer_split(run: Run) -> str:
    """The split of the run's ``result.json`` accuracies: a search under the protocol answers
    with the test split, read once after its decisions; any other run with its last
    evaluation's split."""
    return "test" if run.search.get("protocol") and run.result else split_of(run)
