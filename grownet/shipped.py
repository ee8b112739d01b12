"""The search specs and paper recipes shipped with grownet, and how an argument names one.

The repository keeps them in ``search/*.toml`` and ``recipes/*.toml``; an install carries them as
the packages ``grownet.specs`` and ``grownet.recipes`` (see pyproject.toml), read here with
:mod:`importlib.resources`, so ``grownet search digits`` works from any folder, in a clone or
after ``pip install``.

An argument that names an existing file is the user's file: a path always wins. Otherwise a bare
name (``digits`` or ``digits.toml``) is the shipped file of that name. A folder is never a spec:
``grownet search search`` in a clone is an unknown name, not the folder ``search/``.

>>> resolve_spec("digits").name
'digits.toml'
>>> resolve_recipe("dropin_mnist_lenet.toml").stem
'dropin_mnist_lenet'
>>> "digits" in shipped_names("spec")
True
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path
from typing import Literal

from grownet.errors import BadValueError

Kind = Literal["spec", "recipe"]

# kind -> (package holding the files, what the user calls one, the command that runs one)
_KINDS: dict[str, tuple[str, str, str]] = {
    "spec": ("grownet.specs", "search spec", "grownet search"),
    "recipe": ("grownet.recipes", "recipe", "grownet reproduce"),
}
_SUFFIX = ".toml"


def shipped_names(kind: Kind) -> list[str]:
    """The names (file stems) of the shipped specs or recipes, sorted."""
    package = _KINDS[kind][0]
    return sorted(
        entry.name.removesuffix(_SUFFIX)
        for entry in files(package).iterdir()
        if entry.name.endswith(_SUFFIX) and entry.is_file()
    )


def shipped_path(kind: Kind, name: str) -> Path:
    """The file of the shipped spec or recipe ``name`` (a stem, with or without ``.toml``)."""
    package = _KINDS[kind][0]
    # pip installs packages unpacked, so the resource is a file on disk that load_spec can read.
    return Path(str(files(package).joinpath(name.removesuffix(_SUFFIX) + _SUFFIX)))


def _is_bare_name(arg: str) -> bool:
    separators = {"/", os.sep, os.altsep} - {None}
    return not any(sep in arg for sep in separators) and Path(arg).suffix in {"", _SUFFIX}


def resolve(arg: str | os.PathLike[str], kind: Kind) -> Path:
    """The file the argument names: an existing path as given, else the shipped file of that name.

    Raises :class:`~grownet.errors.BadValueError` (one line listing the shipped names) when the
    argument is neither an existing file nor a shipped name.
    """
    given = os.fspath(arg)
    path = Path(given)
    if path.exists() and not path.is_dir():
        return path
    _, what, command = _KINDS[kind]
    names = shipped_names(kind)
    if _is_bare_name(given) and path.stem in names:
        return shipped_path(kind, path.stem)
    shipped = ", ".join(names) or "none"
    if _is_bare_name(given):
        problem = f"no shipped {what} is named {given!r} and there is no file {given}"
    else:
        hint = f" (the shipped one is `{command} {path.stem}`)" if path.stem in names else ""
        missing = "is a folder, not a file" if path.is_dir() else "does not exist"
        problem = f"{what} file {given} {missing}{hint}"
    raise BadValueError(
        f"{problem}; the shipped {what}s are: {shipped}; a path to an existing file is read as "
        f"your own {what} instead"
    )


def resolve_spec(arg: str | os.PathLike[str] | None = None) -> Path:
    """The search spec ``grownet search [SPEC]`` runs; no argument is the shipped ``digits``."""
    return resolve("digits" if arg is None else arg, "spec")


def resolve_recipe(arg: str | os.PathLike[str]) -> Path:
    """The recipe ``grownet reproduce NAME`` runs: a path, or a shipped name."""
    return resolve(arg, "recipe")
