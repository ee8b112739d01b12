"""Read CIFAR's python-pickle files without ever running code from them.

``pickle.load`` calls whatever function a file names, so a planted ``data_batch_1`` could run
anything before a single check. :func:`load_pickle` unpickles with :class:`CifarUnpickler`,
whose ``find_class`` hands out only the few numpy functions that rebuild a plain array; every
other global (``os.system``, ``builtins.eval``, ``numpy.load``, ...) is refused, naming the file
and the global, before anything is called. What the official files hold (dicts of str or bytes
keys, lists, str, bytes, ints and uint8 arrays) needs no other global.

>>> import pickle, tempfile
>>> from pathlib import Path
>>> p = Path(tempfile.mkdtemp(), "b")
>>> _ = p.write_bytes(pickle.dumps({"labels": [3, 1], "data": np.zeros((1, 2), np.uint8)}))
>>> load_pickle(p)["labels"]
[3, 1]
>>> _ = p.write_bytes(b"cos\\nsystem\\n(S'echo hi'\\ntR.")
>>> load_pickle(p)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
grownet.errors.DataFileError: .../b: holds a pickled 'os.system', not CIFAR data; ...
"""

from __future__ import annotations

import codecs
import io
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from grownet.errors import DataFileError

__all__ = ["REPLACE", "CifarUnpickler", "load_pickle"]

REPLACE = "delete it and run with --download, or replace it with the official release"
"""The fix for any CIFAR file that cannot be read."""

try:  # numpy >= 2 moved the internals to numpy._core; 1.x pickles still name numpy.core
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer

# Each admitted global only allocates an array or a dtype from plain data. Names map straight
# to objects, so find_class never imports a module a file names.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # _reconstruct(ndarray, shape, typecode): an empty array that BUILD then fills (protocols
    # 0-4, and the official Python 2 files).
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    # _frombuffer(bytes, dtype, shape, order): how protocol 5 pickles an array.
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    # Python 3 writes bytes as _codecs.encode(str, "latin1") under protocols 0-2; it only
    # encodes a string.
    ("_codecs", "encode"): codecs.encode,
}

# What a truncated or foreign file makes the unpickler raise; anything else is a bug.
_NOT_A_PICKLE = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,  # includes UnicodeDecodeError
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    RecursionError,
    struct.error,
)


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that admits only the numpy globals a plain array needs.

    ``path`` names the file in the error; ``encoding="latin1"`` reads the official Python 2
    files (byte-string data) as torchvision does.
    """

    def __init__(self, file: io.BufferedIOBase, path: str | Path) -> None:
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DataFileError(
                self.path, f"holds a pickled {f'{module}.{name}'!r}, not CIFAR data; {REPLACE}"
            ) from None


def load_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`CifarUnpickler`; any failure is a :class:`DataFileError`."""
    with open(path, "rb") as f:
        try:
            return CifarUnpickler(f, path).load()
        except DataFileError:
            raise
        except _NOT_A_PICKLE as err:
            # Capped: a foreign file's bytes can end up in the message.
            reason = f"{type(err).__name__}: {err}"[:120] if str(err) else type(err).__name__
            raise DataFileError(
                path,
                f"is not a readable CIFAR pickle ({reason}); the file is truncated or "
                f"corrupt; {REPLACE}",
            ) from None
