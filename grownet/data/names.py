"""Dataset names with a scheme: ``imagefolder:PATH``, ``npz:PATH``, ``pt:PATH``, ``csv:PATH``,
``text:PATH``.

A name is ``SCHEME:PATH`` with options after a ``?`` as ``key=value`` pairs joined by ``&``::

    imagefolder:~/data/flowers?size=64
    csv:data/churn.csv?target=churned
    text:corpus.txt?context=256&level=byte
    npz:/srv/arrays/signals.npz

The options live in the name, not in separate settings, because a dataset is named in many
places (``--dataset``, ``TrainConfig.dataset``, search and study specs) and the name alone
must say which data a run saw: it is saved in every run's ``config.json``, and a resumed run
with another ``size`` or ``target`` is refused like any other changed setting.

A relative ``PATH`` is looked up in the current directory, then in the data directory
(``--data-dir``, ``$GROWNET_DATA``), so a spec can say ``imagefolder:flowers`` and run
wherever the data directory holds ``flowers/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from grownet.data.text import DEFAULT_CONTEXT, LEVELS
from grownet.errors import BadValueError

__all__ = ["SCHEMES", "DataName", "is_scheme_name", "parse_name"]

# scheme -> {option: (type, default, what it means)}; a default of None means required.
SCHEMES: dict[str, dict[str, tuple[type, object, str]]] = {
    "imagefolder": {
        "size": (int, 32, "side in pixels every image is resized to (default 32)"),
    },
    "npz": {},
    "pt": {},
    "csv": {"target": (str, None, "the column holding the class labels")},
    "text": {
        "context": (int, DEFAULT_CONTEXT, "tokens a model sees at once (default 64)"),
        "level": (str, "char", "char (the file's characters, UTF-8) or byte"),
    },
}
MAX_CONTEXT = 65536

_EXAMPLES = {
    "imagefolder": "imagefolder:PATH?size=32",
    "npz": "npz:PATH",
    "pt": "pt:PATH",
    "csv": "csv:PATH?target=COLUMN",
    "text": "text:PATH?context=64&level=char",
}


@dataclass(frozen=True)
class DataName:
    """A parsed scheme name: the scheme, the path as written, and the typed options."""

    scheme: str
    path: str
    options: dict[str, object] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The name in its canonical form (scheme lower case, options in a fixed order)."""
        given = [f"{k}={v}" for k, v in self.options.items() if v != SCHEMES[self.scheme][k][1]]
        return f"{self.scheme}:{self.path}" + (f"?{'&'.join(given)}" if given else "")

    def resolve(self, data_dir: Path) -> Path:
        """The path on disk: as given if it exists (``~`` expanded), else under ``data_dir``.

        A path found nowhere is returned as given, for the reader to report missing.
        """
        path = Path(self.path).expanduser()
        if path.is_absolute() or path.exists() or not (data_dir / path).exists():
            return path.absolute()
        return (data_dir / path).absolute()


def is_scheme_name(name: object) -> bool:
    """Whether ``name`` is meant as ``SCHEME:PATH`` (any ``word:`` prefix, known or not).

    >>> is_scheme_name("csv:x.csv"), is_scheme_name("mnist")
    (True, False)
    """
    if not isinstance(name, str) or ":" not in name:
        return False
    head = name.split(":", 1)[0].strip()
    return head.isidentifier()


def parse_name(name: str) -> DataName:
    """Split ``SCHEME:PATH?key=value&...`` and check the scheme and its options.

    >>> parse_name("imagefolder:trees?size=64")
    DataName(scheme='imagefolder', path='trees', options={'size': 64})
    >>> parse_name("csv:t.csv").options
    Traceback (most recent call last):
    ...
    grownet.errors.BadValueError: dataset 'csv:t.csv': csv needs target=..., the column holding ...
    """
    scheme, _, rest = name.partition(":")
    scheme = scheme.strip().lower()
    if scheme not in SCHEMES:
        known = ", ".join(f"{s}:" for s in SCHEMES)
        raise BadValueError(
            f"dataset {name!r}: unknown scheme {scheme + ':'!r}; use one of {known} "
            "(or a named dataset such as digits)"
        )
    path, _, query = rest.partition("?")
    if not path.strip():
        raise BadValueError(f"dataset {name!r} names no path; write {_EXAMPLES[scheme]}")
    accepted = SCHEMES[scheme]
    options: dict[str, object] = {}
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not value.strip():
            raise BadValueError(f"dataset {name!r}: option {item!r} needs a value, as in key=value")
        if key not in accepted:
            listed = ", ".join(accepted) or "none"
            raise BadValueError(
                f"dataset {name!r}: {scheme} has no option {key!r}; its options: {listed}"
            )
        options[key] = _typed(name, key, value.strip(), accepted[key][0])
    for key, (_, default, what) in accepted.items():
        if key not in options:
            if default is None:
                raise BadValueError(
                    f"dataset {name!r}: {scheme} needs {key}=..., {what}; write {_EXAMPLES[scheme]}"
                )
            options[key] = default
    options = {key: options[key] for key in accepted}  # the canonical order, whatever was given
    if scheme == "imagefolder" and not 4 <= options["size"] <= 4096:
        size = options["size"]
        raise BadValueError(f"dataset {name!r}: size must be in [4, 4096] pixels, got {size}")
    if scheme == "text":
        context, level = options["context"], str(options["level"]).lower()
        if not 1 <= context <= MAX_CONTEXT:
            raise BadValueError(
                f"dataset {name!r}: context must be in [1, {MAX_CONTEXT}] tokens, got {context}"
            )
        if level not in LEVELS:
            raise BadValueError(
                f"dataset {name!r}: level must be {' or '.join(LEVELS)}, got {options['level']!r}"
            )
        options["level"] = level
    return DataName(scheme, path.strip(), options)


def _typed(name: str, key: str, value: str, kind: type) -> object:
    if kind is int:
        if not value.isdigit():
            raise BadValueError(f"dataset {name!r}: {key} must be a whole number, got {value!r}")
        return int(value)
    return value
