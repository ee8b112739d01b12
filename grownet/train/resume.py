"""Which settings a resumed run may change, and what it may not.

A resumed run must give the numbers the uninterrupted run would have given. So every setting
that changes results must equal the checkpoint's; only the ones in :data:`RESULT_NEUTRAL` may
differ. ``threads`` and ``compile`` are not among them: the number of CPU threads and fused
compiled kernels change the order floating-point sums are taken in, hence the last bits of every
weight. ``max_iter`` changes results too (the last display and test records fall on it, and
the cosine schedule is a function of it), but a run may be *extended* explicitly: ``--extend``
with a larger ``max_iter`` under a schedule that does not depend on it; the earlier budgets are
recorded in ``config.json`` as ``extensions``.

>>> saved = {"max_iter": 100, "quiet": False, "threads": 2, "base_lr": 0.1}
>>> changed_settings(saved, {"max_iter": 100, "quiet": True, "threads": 4, "base_lr": 0.1})
['threads']
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from grownet.errors import RunDirError
from grownet.train.config import ConfigError, TrainConfig
from grownet.train.rundir import RunDir
from grownet.train.verdict import INTERRUPTED

# Settings that may differ between a run and its resumption without changing its results.
RESULT_NEUTRAL = frozenset(
    {
        "quiet",
        "checkpoint_interval",
        "download",
        "data_dir",  # the same files, found elsewhere
        "runs_dir",  # the same run, moved
        "extensions",  # history, carried over from the checkpoint
    }
)
# Learning-rate policies whose value at an iteration depends on max_iter.
_SCHEDULES_OF_MAX_ITER = ("cosine",)


def differing_keys(
    saved: dict[str, Any], now: dict[str, Any], *, ignore: Iterable[str] = ()
) -> list[str]:
    """The keys, other than ``ignore``, whose values differ (or that only one side has):
    what a rerun into a directory changed, for a run, a search or a study.

    >>> differing_keys({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 5, "d": 4}, ignore={"c"})
    ['b', 'd']
    """
    keys = (saved.keys() | now.keys()) - set(ignore)
    return sorted(k for k in keys if saved.get(k) != now.get(k))


def changed_settings(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The settings, other than result-neutral ones, whose values differ. A setting added to
    :class:`TrainConfig` after a run was saved counts as its default there (that is what the
    run trained with).

    >>> changed_settings({"seed": 1}, {"seed": 1, "folds": 0}), changed_settings({}, {"folds": 3})
    ([], ['folds'])
    """
    defaults = TrainConfig().to_dict()
    saved = {**{k: defaults[k] for k in now.keys() - saved.keys() if k in defaults}, **saved}
    return differing_keys(saved, now, ignore=RESULT_NEUTRAL)


def check_resume(
    run: Path, saved: dict[str, Any], now: dict[str, Any], *, iteration: int, extend: bool
) -> list[int]:
    """Refuse a resumption that would change results; return the run's ``extensions`` (the
    earlier ``max_iter`` values, one more when this call extends the run)."""
    changed = changed_settings(saved, now)
    extensions = list(saved.get("extensions", []))
    if "max_iter" in changed:
        changed.remove("max_iter")
        if not changed:
            _check_extension(run, saved, now, iteration=iteration, extend=extend)
            extensions.append(saved["max_iter"])
    if changed:
        shown = "; ".join(f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in changed[:4])
        raise ConfigError(
            f"{run} was trained with other settings that change results ({shown}); rerun with "
            "the run's own settings, or pass another --name (or --overwrite to replace it)"
        )
    return extensions


def _check_extension(
    run: Path, saved: dict[str, Any], now: dict[str, Any], *, iteration: int, extend: bool
) -> None:
    old, new = saved["max_iter"], now["max_iter"]
    if new < iteration:
        raise ConfigError(
            f"{run} is at iteration {iteration} already; --max-iter {new} would cut it short: "
            f"rerun with its max_iter {old}, or pass another --name"
        )
    if not extend:
        raise ConfigError(
            f"{run} was set for max_iter {old}, not {new}: another budget changes where the run "
            "ends; pass --extend with a larger --max-iter to train it further, or another --name"
        )
    if new < old:
        raise ConfigError(f"--extend needs --max-iter above the run's {old}, got {new}")
    if saved.get("lr_policy") in _SCHEDULES_OF_MAX_ITER:
        raise ConfigError(
            f"--extend: {run} uses the {saved['lr_policy']} schedule, a function of max_iter; "
            "training further would change the rates of the iterations already run. Start a "
            "new --name with the larger budget"
        )


def check_fresh_start(run_dir: RunDir, config: dict[str, Any], *, resume: bool) -> None:
    """Refuse to start afresh over a run the user did not name for deletion. A run that
    saved no checkpoint yet (killed early) under the same settings (``config``) restarts: it
    loses nothing an identical rerun would not redo."""
    if not run_dir.holds_run():
        return
    saved, result = _read_or_none(run_dir, "config.json"), _read_or_none(run_dir, "result.json")
    ended = isinstance(result, dict) and result.get("status") != INTERRUPTED
    same = isinstance(saved, dict) and not changed_settings(saved, config)
    if resume and same and not ended:
        return
    what = "an unfinished run"
    if ended:
        what = f"a finished run ({result.get('status')}, {result.get('iterations')} iterations)"
    elif resume:
        what += " with other settings and no checkpoint to resume"
    raise RunDirError(
        f"{run_dir.path} already holds {what}; pass another --name, or --overwrite "
        "to delete it and train afresh"
    )


def _read_or_none(run_dir: RunDir, name: str) -> Any:
    try:
        return run_dir.read_json(name)
    except (OSError, ValueError):
        return None
