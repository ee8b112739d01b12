"""What every graph module shares and nothing in it depends on: the graph's error class, the
per-sample shape type and the marker of a required layer parameter.

Kept apart so that the op table (:mod:`grownet.graph.ops`) and the layer specs that check
against it (:mod:`grownet.graph.spec`) import in one direction only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grownet.errors import BadValueError

GRAPH_FORMAT = "grownet.netgraph"
"""The ``format`` field of every graph file grownet writes."""

Shape = tuple[int, ...]
"""A per-sample tensor shape, batch dimension excluded: ``(C, H, W)`` or ``(F,)``."""


class GraphError(BadValueError):
    """A network graph is malformed; the message names the node and the fix."""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Marks a parameter that has no default and must be given."""


def is_graph_file(path: Path) -> bool:
    """Whether ``path`` holds a graph grownet wrote (its format marker), so it may be replaced."""
    try:
        data = json.loads(path.read_text(errors="replace"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == GRAPH_FORMAT
