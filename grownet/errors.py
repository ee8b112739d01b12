"""The classes of user mistakes, so the command line handles a *class*, not a case.

Every error a user can fix derives from :class:`UserError`; its message is one line that names
the thing (a file, a key, a value) and the fix. ``grownet.cli.main`` prints it after
``grownet: error:`` and exits 2. New code inherits that handling by raising one of these (or a
subclass), never by adding a case to the command line. File-system errors (``OSError``) are
mapped by the command line too; anything else is a bug and keeps its traceback.

>>> err = DataFileError("/data/cifar-10-batches-py/data_batch_1", "holds a pickled function")
>>> print(err)
/data/cifar-10-batches-py/data_batch_1: holds a pickled function
>>> isinstance(err, UserError) and isinstance(err, ValueError)
True
"""

from __future__ import annotations

import os


class UserError(Exception):
    """A mistake the user can fix; ``str(err)`` is one line naming the thing and the fix."""

    def __str__(self) -> str:
        # One line whatever the inputs hold, so a command line and a log parser can rely on it.
        return " ".join(super().__str__().split())


class BadValueError(UserError, ValueError):
    """A value that makes no sense (a flag, a config key, a spec entry, a graph field)."""


class DataFileError(BadValueError):
    """A file the user gave (a dataset file, a graph, a checkpoint) is corrupt, truncated,
    foreign or unsafe to read."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self):  # exceptions travel between processes (DDP, workers) by pickling
        return (type(self), (self.path, self.problem))


class RunDirError(UserError):
    """A run directory cannot be used as asked: held by another writer, already finished with
    other settings, or named outside the runs directory."""


class DeviceError(BadValueError):
    """A device that does not exist here (``cuda`` on a machine without CUDA, ``cuda:7``)."""
