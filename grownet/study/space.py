"""A study's search space: one entry per knob, sampled by Optuna and written into a run's spec.

A knob is named by where it goes: ``train.<TrainConfig key>``, ``model.<builder option>``, or
for a study of growth searches ``growth.<key>``, ``width.<key>``, ``depth.<key>``,
``verify.<key>``. A list-valued builder option (convnet's ``widths``: one width per stage)
gets one value per position, ``length`` of them; ``length = [lo, hi]`` samples the length too,
as its own parameter ``<name>.length`` (the number of stages: a depth). In TOML::

    [space.model.widths]          # Optuna parameters model.widths[0], model.widths[1]
    type = "categorical"
    choices = [8, 16, 32]
    length = 2
    [space.train.base_lr]
    type = "float"
    low = 0.01
    high = 0.2
    log = true

>>> p = parse_param("model.convs", {"type": "int", "low": 1, "high": 3}, "s.toml")
>>> p.grid()
{'model.convs': [1, 2, 3]}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grownet.errors import BadValueError

TYPES = ("int", "float", "categorical")
SECTIONS = ("train", "model", "growth", "width", "depth", "verify")
_KEYS = {
    "int": {"type", "low", "high", "step", "log", "length"},
    "float": {"type", "low", "high", "step", "log", "length"},
    "categorical": {"type", "choices", "length"},
}


class SpaceError(BadValueError):
    """A search-space mistake; the message names the parameter, the value and what is allowed."""


@dataclass(frozen=True)
class Param:
    """One knob: its distribution, and how many list positions it fills (0: a scalar)."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    length: tuple[int, int] = (0, 0)

    @property
    def section(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def key(self) -> str:
        return self.name.split(".", 1)[1]

    def _one(self, trial: Any, name: str) -> Any:
        if self.kind == "int":
            step = int(self.step or 1)
            return trial.suggest_int(name, int(self.low), int(self.high), step=step, log=self.log)
        if self.kind == "float":
            return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)
        return trial.suggest_categorical(name, list(self.choices))

    def suggest(self, trial: Any) -> Any:
        """This knob's value for ``trial`` (a list for a list option)."""
        lo, hi = self.length
        if hi == 0:
            return self._one(trial, self.name)
        n = lo if lo == hi else trial.suggest_int(f"{self.name}.length", lo, hi)
        return [self._one(trial, f"{self.name}[{i}]") for i in range(n)]

    def grid(self) -> dict[str, list[Any]]:
        """The grid sampler's axes for this knob (a fixed length is needed)."""
        if self.kind == "categorical":
            values = list(self.choices)
        elif self.kind == "int" or self.step:
            step = self.step or 1
            count = math.floor((self.high - self.low) / step + 1e-9) + 1
            values = [self.low + i * step for i in range(count)]
            values = [int(v) for v in values] if self.kind == "int" else values
        else:
            raise SpaceError(
                f"space {self.name}: a grid needs a step (or choices) for a float knob"
            )
        lo, hi = self.length
        if hi == 0:
            return {self.name: values}
        if lo != hi:
            raise SpaceError(f"space {self.name}: a grid needs a fixed length, got {lo}..{hi}")
        return {f"{self.name}[{i}]": values for i in range(hi)}


def parse_param(name: str, table: Any, source: str) -> Param:
    """Check one ``[space.NAME]`` table; one line names the key, the value and what is allowed."""
    where = f"{source} [space.{name}]"
    section = name.split(".", 1)[0]
    if section not in SECTIONS or "." not in name:
        raise SpaceError(
            f"{where}: a knob is named <section>.<key> with section one of "
            f"{', '.join(SECTIONS)}, e.g. model.widths or train.base_lr"
        )
    if not isinstance(table, Mapping):
        raise SpaceError(f"{where}: expected a table with type = ..., got {table!r}")
    kind = table.get("type")
    if kind not in TYPES:
        raise SpaceError(f"{where}: type must be one of {', '.join(TYPES)}, got {kind!r}")
    unknown = sorted(set(table) - _KEYS[kind])
    if unknown:
        raise SpaceError(f"{where}: unknown key {unknown[0]!r} for type {kind}; known: "
                         f"{', '.join(sorted(_KEYS[kind]))}")  # fmt: skip
    length = _length(table.get("length", 0), where)
    if kind == "categorical":
        choices = table.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{where}: choices must be a non-empty list, got {choices!r}")
        return Param(name, kind, choices=tuple(choices), length=length)
    low, high, step = table.get("low"), table.get("high"), table.get("step")
    number = int if kind == "int" else (int, float)
    for key, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, number):
            wanted = "an integer" if kind == "int" else "a number"
            raise SpaceError(f"{where}: {key} must be {wanted}, got {value!r}")
    if not low <= high:
        raise SpaceError(f"{where}: low must be <= high, got low={low!r}, high={high!r}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, number) or step <= 0):
        raise SpaceError(f"{where}: step must be a number > 0, got {step!r}")
    log = table.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{where}: log must be true or false, got {log!r}")
    if log and (low <= 0 or step is not None):
        raise SpaceError(f"{where}: log = true needs low > 0 and no step, got low={low!r}")
    return Param(name, kind, low=low, high=high, step=step, log=log, length=length)


def _length(value: Any, where: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return (value, value)
    ok = isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    )
    if ok and 1 <= value[0] <= value[1]:
        return (value[0], value[1])
    raise SpaceError(f"{where}: length must be an integer >= 1 or [low, high], got {value!r}")


def flatten(space: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"widths": {...}}}`` (TOML's nested tables) -> ``{"model.widths": {...}}``."""
    flat: dict[str, Any] = {}
    for key, value in space.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping) and "type" not in value and value:
            flat |= flatten(value, name)
        else:
            flat[name] = value
    return flat
