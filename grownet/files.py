"""Files that hold results are replaced whole, never rewritten in place, and output locations
are checked before any work starts.

A reader (a report, a resumed run, a second process) sees the old file or the new one, never
half of either: the new bytes go to a temporary file in the same directory, are flushed to the
disk, and take the old name in one ``os.replace``. A crash, a SIGKILL or a full disk in between
leaves the previous version intact.

>>> import tempfile
>>> d = Path(tempfile.mkdtemp())
>>> atomic_write_text(d / "result.json", '{"ok": true}\\n')
>>> (d / "result.json").read_text()
'{"ok": true}\\n'
>>> sorted(p.name for p in d.iterdir())  # no temporary file is left behind
['result.json']
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from grownet.errors import BadValueError


class LockHeld(Exception):
    """Another process (or another part of this one) holds the lock; ``holder`` is its PID."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is locked by PID {holder}")
        self.holder = holder


class OutputError(BadValueError):
    """An output location that cannot be written (checked before the work that fills it)."""


def _fsync_dir(directory: Path) -> None:
    # The rename itself lives in the directory: without this a power cut may forget it.
    with contextlib.suppress(OSError):  # some file systems do not allow opening directories
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _default_mode() -> int:
    # mkstemp makes 0600 files; a results file gets what open() would give it (the umask's).
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _default_mode()


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, *, binary: bool = False) -> Iterator[IO]:
    """A file object whose contents replace ``path`` when the block ends without an error.

    An error inside the block leaves ``path`` as it was and removes the temporary file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _MODE)
        with os.fdopen(fd, "wb" if binary else "w") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (see the module docstring)."""
    with atomic_writer(path) as f:
        f.write(text)


def atomic_save(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Replace ``path`` with what ``write`` puts into a binary file object (``torch.save``)."""
    with atomic_writer(path, binary=True) as f:
        write(f)


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, *, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive OS lock (``flock``) on ``path`` for the block, this process's PID
    written in it. The operating system drops the lock when the process ends however it ends,
    so a SIGKILL leaves nothing stale. Without ``wait`` a lock held elsewhere raises
    :class:`LockHeld` at once.

    >>> import tempfile
    >>> lock = Path(tempfile.mkdtemp()) / ".lock"
    >>> with exclusive_lock(lock):
    ...     lock_is_free(lock)
    False
    >>> lock_is_free(lock)
    True
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockHeld(path, path.read_text().strip() or "unknown") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def lock_is_free(path: str | os.PathLike) -> bool:
    """Whether nobody holds ``path``'s lock (its holder finished or died)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def check_output_dir(directory: str | os.PathLike, *, label: str = "output directory") -> Path:
    """``directory``, created if missing, after proving a file can be written there: checked
    before the work that will fill it starts. ``label`` names it in the one-line
    :class:`OutputError` (a flag such as ``--out``, or words).

    >>> check_output_dir("/proc/grownet-nowhere", label="--out")
    Traceback (most recent call last):
    ...
    grownet.files.OutputError: --out /proc/grownet-nowhere: cannot create the directory (...)
    """
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{label} {path}: is a file, not a directory; give a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(
            f"{label} {path}: cannot create the directory ({err.strerror or err})"
        ) from None
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".grownet-write-check-"):
            pass  # removed on closing
    except OSError as err:
        raise OutputError(
            f"{label} {path}: cannot write into the directory ({err.strerror or err})"
        ) from None
    return path


def check_replaceable(
    path: str | os.PathLike, *, label: str, what: str, ours: Callable[[Path], bool]
) -> Path:
    """``path`` may be written: it is absent, or a file grownet wrote (``ours(path)``, e.g. a
    graph file's format marker). Anything else of the user's is refused in one
    :class:`OutputError` line, before any work: grownet replaces only its own files. The
    checks follow symbolic links, so a link is judged by what it leads to.

    >>> check_replaceable("/", label="-o", what="a grownet graph", ours=lambda p: True)
    Traceback (most recent call last):
    ...
    grownet.files.OutputError: -o /: is a directory; name a file
    """
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{label} {target}: is a directory; name a file")
    if target.exists() and not ours(target):
        raise OutputError(
            f"{label} {target} exists and is not {what}; grownet replaces only files it wrote: "
            "choose another name"
        )
    return target
