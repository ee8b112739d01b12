"""Where datasets live on disk, and the error raised when they are not there.

The data directory is chosen once, in a fixed order: an explicit ``--data-dir``, then the
``GROWNET_DATA`` environment variable, then a per-user cache. Each dataset keeps its files in
the sub-folder torchvision uses, so one directory can serve both grownet and plain torchvision.
"""

import os
from collections.abc import Sequence
from pathlib import Path

from grownet.errors import DataFileError, UserError

__all__ = ["ENV_VAR", "DatasetMissing", "DownloadFailed", "missing_files", "resolve_data_dir"]

ENV_VAR = "GROWNET_DATA"


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The directory datasets are read from (and downloaded into, when asked).

    Order: ``explicit`` (the ``--data-dir`` option), else ``$GROWNET_DATA``, else
    ``$XDG_CACHE_HOME/grownet/data``, else ``~/.cache/grownet/data``. The directory is not
    created here: only a download writes into it.

    >>> str(resolve_data_dir("/srv/data"))
    '/srv/data'
    """
    if explicit is not None:
        if not isinstance(explicit, str | os.PathLike):
            raise ValueError(f"data_dir must be a str or a path, got {explicit!r}")
        if str(explicit).strip() == "":
            raise ValueError(f"data_dir must not be empty, got {explicit!r}")
        return Path(explicit).expanduser()
    # An empty variable counts as unset: `GROWNET_DATA= grownet ...` is a common way to unset.
    from_env = os.environ.get(ENV_VAR, "").strip()
    if from_env:
        return Path(from_env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "grownet" / "data"


def missing_files(directory: Path, expected: Sequence[str]) -> list[str]:
    """The names in ``expected`` absent from ``directory``.

    A name may offer alternatives separated by ``|`` (e.g. ``"a|a.gz"``): it counts as present
    when any one of them is a file.

    >>> missing_files(Path("/nonexistent"), ["a|a.gz"])
    ['a|a.gz']
    """
    return [
        name
        for name in expected
        if not any((directory / option).is_file() for option in name.split("|"))
    ]


def _shown(name: str) -> str:
    # "a|a.gz" reads better as "a(.gz)" in a message; other alternatives are listed as is.
    options = name.split("|")
    if len(options) == 2 and options[1] == options[0] + ".gz":
        return f"{options[0]}(.gz)"
    return " or ".join(options)


class DatasetMissing(UserError, FileNotFoundError):
    """A dataset's files are not where grownet looked for them.

    ``str(error)`` is a single line that names the dataset, the directory searched, the files
    expected there and the fix, so a command line tool can print it as is.

    >>> print(DatasetMissing("MNIST", Path("/x/MNIST/raw"), ["t10k-labels-idx1-ubyte|t10k-labels-idx1-ubyte.gz"]))
    MNIST not found in /x/MNIST/raw: expected t10k-labels-idx1-ubyte(.gz); place the files there or run with --download
    """  # noqa: E501

    def __init__(
        self,
        dataset: str,
        directory: str | os.PathLike,
        expected: Sequence[str],
        *,
        fix: str = "place the files there or run with --download",
    ) -> None:
        self.dataset = dataset
        self.directory = Path(directory)
        self.expected = tuple(expected)
        self.fix = fix
        listed = ", ".join(_shown(name) for name in self.expected)
        message = f"{dataset} not found in {self.directory}: expected {listed}; {fix}"
        # One line whatever the inputs hold, so log parsers and CLIs can rely on it.
        super().__init__(" ".join(message.split()))

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):
        # Exceptions pickle through their args; ours has a richer constructor (DDP workers
        # and multiprocessing send exceptions across processes).
        return (
            type(self),
            (self.dataset, self.directory, self.expected),
            {"fix": self.fix, "args": self.args},
        )

    def __setstate__(self, state: dict) -> None:
        self.fix = state["fix"]
        self.args = state["args"]


class DownloadFailed(UserError):
    """``--download`` could not fetch a dataset (no network, a proxy, a failed checksum).

    >>> print(DownloadFailed("MNIST", "https://x/", Path("/d/MNIST/raw"), "[Errno -3] no DNS"))
    could not download MNIST from https://x/: [Errno -3] no DNS; place the files in /d/MNIST/raw yourself (see README)
    """  # noqa: E501

    def __init__(self, dataset: str, url: str, directory: str | os.PathLike, reason: str) -> None:
        self.dataset, self.url, self.directory, self.reason = dataset, url, str(directory), reason
        super().__init__(
            f"could not download {dataset} from {url}: {reason}; "
            f"place the files in {directory} yourself (see README)"
        )

    def __reduce__(self):  # exceptions travel between processes by pickling their arguments
        return (type(self), (self.dataset, self.url, self.directory, self.reason))


def require_file(path: Path, kind: str) -> None:
    """A one-line :class:`DataFileError` unless ``path`` is a file (``kind``: what it must be,
    e.g. "a CSV file")."""
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise DataFileError(
            path,
            f"{what}; name {kind} (relative paths are looked up in the current directory, "
            "then the data directory)",
        )
