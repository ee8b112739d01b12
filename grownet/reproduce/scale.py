"""``--scale quick``: every case of a recipe shrunk by one stated factor, kept apart from the
paper's budget.

A quick run divides every iteration count of a case by :data:`QUICK_FACTOR` (at least 1 where
the setting was nonzero): ``max_iter``, ``test_interval``, ``display_interval``,
``checkpoint_interval``, ``stepsize``, each of ``stepvalues``, ``warmup``,
``give_up_at_chance_after`` and the builder option ``dropin_length``; the ``inv`` policy's
``gamma`` (a per-iteration rate) is multiplied by it, so the learning rate at a quick
iteration is the full run's at the matching full iteration. Every schedule keeps its shape;
only the amount of training shrinks. Quick runs live in ``runs/<recipe>-quick/`` and every
number they print carries :data:`QUICK_LABEL`.

>>> quick = scale_settings({"max_iter": 10000, "lr_policy": "multistep", "stepvalues": [5000],
...                         "model_options": {"n": 5, "dropin_length": 2500}}, "quick")
>>> quick["max_iter"], quick["stepvalues"], quick["model_options"]
(100, [50], {'n': 5, 'dropin_length': 25})
"""

from __future__ import annotations

from typing import Any

from grownet.errors import BadValueError
from grownet.train.config import TrainConfig

SCALES = ("full", "quick")
QUICK_FACTOR = 100
QUICK_LABEL = "quick: not the paper's budget"
# TrainConfig keys that count iterations (0 means "off" for some, and stays 0).
_ITERATION_KEYS = ("max_iter", "test_interval", "display_interval", "checkpoint_interval",
                   "stepsize", "warmup", "give_up_at_chance_after")  # fmt: skip
_ITERATION_OPTIONS = ("dropin_length",)
_DEFAULTS = TrainConfig()


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise BadValueError(f"--scale must be one of {', '.join(SCALES)}, got {scale!r}")
    return scale


def _shrink(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return max(1, round(value / QUICK_FACTOR))
    return value


def shrink(iterations: int, scale: str) -> int:
    """An iteration count of a case at ``scale`` (0 stays 0).

    >>> shrink(750, "quick"), shrink(0, "quick"), shrink(750, "full")
    (8, 0, 750)
    """
    return iterations if check_scale(scale) == "full" else _shrink(iterations)


def scale_settings(settings: dict[str, Any], scale: str) -> dict[str, Any]:
    """A copy of a case's merged settings (recipe ``[train]`` and the case) at ``scale``."""
    if check_scale(scale) == "full":
        return settings
    out = dict(settings)
    for key in _ITERATION_KEYS:
        if key in out:
            out[key] = _shrink(out[key])
    if isinstance(out.get("stepvalues"), list):
        out["stepvalues"] = [_shrink(v) for v in out["stepvalues"]]
    if out.get("lr_policy", _DEFAULTS.lr_policy) == "inv":
        out["gamma"] = out.get("gamma", _DEFAULTS.gamma) * QUICK_FACTOR
    if isinstance(out.get("model_options"), dict):
        options = dict(out["model_options"])
        for key in _ITERATION_OPTIONS:
            if key in options:
                options[key] = _shrink(options[key])
        out["model_options"] = options
    return out


def run_folder(recipe: str, scale: str) -> str:
    """The recipe's directory under the runs directory: a quick run never mixes with a full one.

    >>> run_folder("dropin_mnist_lenet", "quick")
    'dropin_mnist_lenet-quick'
    """
    return recipe if check_scale(scale) == "full" else f"{recipe}-quick"
