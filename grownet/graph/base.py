"""What every graph module shares and nothing in it depends on: the graph's error class, the
per-sample shape type and the marker of a required layer parameter.

Kept apart so that the op table (:mod:`grownet.graph.ops`) and the layer specs that check
against it (:mod:`grownet.graph.spec`) import in one direction only.
"""

from __future__ import annotations

from typing import Any

from grownet.errors import BadValueError

Shape = tuple[int, ...]
"""A per-sample tensor shape, batch dimension excluded: ``(C, H, W)`` or ``(F,)``."""


class GraphError(BadValueError):
    """A network graph is malformed; the message names the node and the fix."""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Marks a parameter that has no default and must be given."""
