"""Readers for the raw on-disk formats: IDX (MNIST), CIFAR python pickles, SVHN .mat files.

torchvision reads these formats too, but it insists on files it can check: MNIST only
uncompressed, CIFAR and SVHN only files whose md5 matches the official release. These readers
mirror torchvision's parsing exactly (same arrays, same label conventions) without that check,
so a gzip-only MNIST folder, a read-only shared copy, or a small fake used in tests all load.
Integrity is checked once, when torchvision downloads the files.

Without that check a file may be truncated, corrupt, foreign or planted: each reader turns
every such case into one :class:`~grownet.errors.DataFileError` naming the file and the fix,
and none runs code from a file (CIFAR pickles go through :mod:`grownet.data.safe_pickle`).
"""

import gzip
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from grownet.data.safe_pickle import REPLACE, load_pickle
from grownet.errors import DataFileError

__all__ = ["read_cifar_batches", "read_cifar_classes", "read_idx", "read_svhn_mat"]

REDOWNLOAD = "delete it and run with --download, or replace it"
"""The fix for a damaged dataset file (a download only fetches the files that are missing)."""

# IDX type codes (http://yann.lecun.com/exdb/mnist/): 0x08 unsigned byte ... 0x0E double.
_IDX_TYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _open_either(path: Path) -> tuple[Path, bytes]:
    """The file read (``path``, or ``path.gz`` when only that exists) and its bytes."""
    if path.is_file():
        return path, path.read_bytes()
    gz = path.with_name(path.name + ".gz")
    if gz.is_file():
        try:
            with gzip.open(gz, "rb") as f:
                return gz, f.read()
        # BadGzipFile: not gzip or a failed CRC; EOFError: cut short; zlib.error: bad deflate.
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise DataFileError(gz, f"is not a readable gzip file ({err}); {REDOWNLOAD}") from None
    raise FileNotFoundError(f"neither {path} nor {gz} exists")


def read_idx(path: str | Path) -> Tensor:
    """Read an IDX file (``path`` or, failing that, ``path.gz``) as a tensor.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> _ = Path(d, "t").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    >>> read_idx(Path(d, "t")).tolist()
    [7, 8, 9]
    """
    source, data = _open_either(Path(path))
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataFileError(
            source, f"is not an IDX file (magic number {data[:4].hex() or 'missing'}); {REDOWNLOAD}"
        )
    dtype = np.dtype(_IDX_TYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    # math.prod on Python ints: a corrupt header's huge dimensions must not overflow int64.
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        size = "bytes" if source.suffix != ".gz" else "bytes once decompressed"
        raise DataFileError(
            source,
            f"has {len(data)} {size}, its header implies {expected}: the file is truncated or "
            f"corrupt; {REDOWNLOAD}",
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    # Native byte order and a writable copy, so torch owns its memory.
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def _cifar_dict(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """The dict a CIFAR file holds, with byte-string keys decoded, checked to have ``keys``."""
    entry = load_pickle(path)
    if not isinstance(entry, dict):
        raise DataFileError(
            path, f"holds a {type(entry).__name__}, not a CIFAR dict with {list(keys)}; {REPLACE}"
        )
    # Files re-pickled by Python 3 from the Python 2 originals may keep bytes keys.
    entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    missing = [k for k in keys if k not in entry]
    if missing:
        raise DataFileError(path, f"lacks the key {missing[0]!r} of a CIFAR file; {REPLACE}")
    return entry


def read_cifar_batches(
    directory: str | Path, files: list[str], *, label_key: str
) -> tuple[Tensor, Tensor]:
    """Concatenate CIFAR python-pickle batches into uint8 N×3×32×32 images and int64 labels.

    Each file is a pickled dict with ``data`` (N×3072 uint8, channel-major rows) and
    ``label_key`` (``labels`` for CIFAR-10, ``fine_labels`` for CIFAR-100), as torchvision's
    CIFAR10/CIFAR100 read them. Unlike torchvision, no code in a file runs (see
    :mod:`grownet.data.safe_pickle`), and a damaged file raises ``DataFileError``.

    >>> import pickle, tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with open(d / "b", "wb") as f:
    ...     pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [3, 1]}, f)
    >>> x, y = read_cifar_batches(d, ["b"], label_key="labels")
    >>> tuple(x.shape), y.tolist()
    ((2, 3, 32, 32), [3, 1])
    """
    images, labels = [], []
    for name in files:
        path = Path(directory) / name
        entry = _cifar_dict(path, ("data", label_key))
        data, batch_labels = entry["data"], entry[label_key]
        if (
            not isinstance(data, np.ndarray)
            or data.dtype != np.uint8
            or data.ndim != 2
            or data.shape[1] != 3 * 32 * 32
        ):
            got = (
                f"{data.dtype} {data.shape}"
                if isinstance(data, np.ndarray)
                else type(data).__name__
            )
            raise DataFileError(
                path, f"is not a CIFAR batch: 'data' must be uint8 N x 3072, got {got}; {REPLACE}"
            )
        if not isinstance(batch_labels, list | np.ndarray) or len(batch_labels) != len(data):
            count = len(batch_labels) if isinstance(batch_labels, list | np.ndarray) else "no"
            raise DataFileError(path, f"has {len(data)} images but {count} {label_key}; {REPLACE}")
        try:
            labels.append(torch.as_tensor(np.asarray(batch_labels, dtype=np.int64)))
        except (TypeError, ValueError, OverflowError):
            raise DataFileError(path, f"its {label_key!r} are not integers; {REPLACE}") from None
        images.append(data)
    x = torch.from_numpy(np.concatenate(images).reshape(-1, 3, 32, 32))
    return x, torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64)


def read_cifar_classes(path: str | Path, key: str) -> tuple[str, ...]:
    """The class names under ``key`` in a CIFAR meta file (``batches.meta`` or ``meta``)."""
    names = _cifar_dict(Path(path), (key,))[key]
    if not isinstance(names, list) or not all(isinstance(n, str | bytes) for n in names):
        raise DataFileError(path, f"its {key!r} is not a list of names; {REPLACE}")
    return tuple(n.decode("latin1") if isinstance(n, bytes) else n for n in names)


def read_svhn_mat(path: str | Path) -> tuple[Tensor, Tensor]:
    """Read an SVHN ``*_32x32.mat`` file as uint8 N×3×32×32 images and int64 labels 0..9.

    The file holds ``X`` (32×32×3×N) and ``y`` (N×1) with the digit 0 labelled 10; like
    torchvision's SVHN, the images are transposed with (3, 2, 0, 1) and 10 becomes 0.

    >>> import tempfile, scipy.io
    >>> p = Path(tempfile.mkdtemp(), "t.mat")
    >>> scipy.io.savemat(p, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[10], [3]])})
    >>> x, y = read_svhn_mat(p)
    >>> tuple(x.shape), y.tolist()
    ((2, 3, 32, 32), [0, 3])
    """
    import scipy.io  # optional dependency of torchvision; imported only when SVHN is used

    mat = _loadmat(scipy.io, Path(path))
    x, y = mat.get("X"), mat.get("y")
    numeric = [isinstance(a, np.ndarray) and a.dtype.kind in "uif" for a in (x, y)]
    if not all(numeric) or x.ndim != 4:
        raise DataFileError(
            path, f"is not an SVHN .mat file (needs X of 32x32x3xN and y); {REDOWNLOAD}"
        )
    x = torch.from_numpy(np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)), np.uint8))
    y = torch.from_numpy(y.astype(np.int64).reshape(-1))
    if y.numel() != x.shape[0]:
        raise DataFileError(path, f"has {x.shape[0]} images but {y.numel()} labels; {REDOWNLOAD}")
    return x, torch.where(y == 10, 0, y)


def _loadmat(scipy_io: Any, path: Path) -> dict[str, Any]:
    """``scipy.io.loadmat(path)``, with every sign of a damaged file as a ``DataFileError``.

    loadmat parses MATLAB v5 files itself (MATLAB objects come back as inert arrays, nothing
    is unpickled or evaluated), so reading a foreign file is safe; it only fails in many ways.
    """
    try:
        return scipy_io.loadmat(str(path))
    except NotImplementedError:  # MATLAB v7.3 files are HDF5 underneath
        raise DataFileError(
            path, f"is a MATLAB v7.3 (HDF5) file; grownet reads the official v5 .mat; {REDOWNLOAD}"
        ) from None
    except OSError as err:
        if err.errno is not None:  # a real file-system error (permissions...), not the content
            raise
        raise DataFileError(path, f"is truncated or corrupt ({err}); {REDOWNLOAD}") from None
    # MatReadError: empty or cut short; ValueError: not a .mat; IndexError, TypeError: garbled
    # headers; zlib.error: a damaged compressed variable.
    except (scipy_io.matlab.MatReadError, ValueError, IndexError, TypeError, zlib.error) as err:
        reason = f"{type(err).__name__}: {str(err)[:100]}"
        raise DataFileError(path, f"is not a readable .mat file ({reason}); {REDOWNLOAD}") from None
