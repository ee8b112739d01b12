"""Reading the TOML files users write: run configs, search and study specs, recipes.

>>> import tempfile
>>> from pathlib import Path
>>> bad = Path(tempfile.mkdtemp()) / "bad.toml"
>>> _ = bad.write_text("max_iter = = 3")
>>> read_toml(bad, error=ValueError, missing="no such file")
Traceback (most recent call last):
...
ValueError: .../bad.toml is not valid TOML: Invalid value (at line 1, column 12)
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def read_toml(path: Path, *, error: type[Exception], missing: str) -> dict[str, Any]:
    """The tables of ``path``; a missing, binary or malformed file is one ``error`` line
    (``missing``: the line, with its fix, when the file does not exist)."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise error(missing) from None
    except UnicodeDecodeError:
        raise error(f"{path} is not a text file; it must be TOML") from None
    except tomllib.TOMLDecodeError as err:
        raise error(f"{path} is not valid TOML: {err}") from None
