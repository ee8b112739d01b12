"""Readers for the raw on-disk formats: IDX (MNIST), CIFAR python pickles, SVHN .mat files.

torchvision reads these formats too, but it insists on files it can check: MNIST only
uncompressed, CIFAR and SVHN only files whose md5 matches the official release. These readers
mirror torchvision's parsing exactly (same arrays, same label conventions) without that check,
so a gzip-only MNIST folder, a read-only shared copy, or a small fake used in tests all load.
Integrity is checked once, when torchvision downloads the files.
"""

import gzip
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["read_cifar_batches", "read_idx", "read_svhn_mat"]

# IDX type codes (http://yann.lecun.com/exdb/mnist/): 0x08 unsigned byte ... 0x0E double.
_IDX_TYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _open_either(path: Path) -> bytes:
    """The bytes of ``path``, or of ``path.gz`` decompressed when only that exists."""
    if path.is_file():
        return path.read_bytes()
    gz = path.with_name(path.name + ".gz")
    if gz.is_file():
        with gzip.open(gz, "rb") as f:
            return f.read()
    raise FileNotFoundError(f"neither {path} nor {gz} exists")


def read_idx(path: str | Path) -> Tensor:
    """Read an IDX file (``path`` or, failing that, ``path.gz``) as a tensor.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> _ = Path(d, "t").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    >>> read_idx(Path(d, "t")).tolist()
    [7, 8, 9]
    """
    data = _open_either(Path(path))
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4].hex()})")
    dtype = np.dtype(_IDX_TYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path} has {len(data)} bytes, its header implies {expected}")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    # Native byte order and a writable copy, so torch owns its memory.
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def read_cifar_batches(
    directory: str | Path, files: list[str], *, label_key: str
) -> tuple[Tensor, Tensor]:
    """Concatenate CIFAR python-pickle batches into uint8 N×3×32×32 images and int64 labels.

    Each file is a pickled dict with ``data`` (N×3072 uint8, channel-major rows) and
    ``label_key`` (``labels`` for CIFAR-10, ``fine_labels`` for CIFAR-100), as torchvision's
    CIFAR10/CIFAR100 read them. Pickles run code when loaded: only read files you trust
    (torchvision does the same).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with open(d / "b", "wb") as f:
    ...     pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [3, 1]}, f)
    >>> x, y = read_cifar_batches(d, ["b"], label_key="labels")
    >>> tuple(x.shape), y.tolist()
    ((2, 3, 32, 32), [3, 1])
    """
    images, labels = [], []
    for name in files:
        with open(Path(directory) / name, "rb") as f:
            # latin1: the official files are Python 2 pickles with byte-string keys and data.
            entry = pickle.load(f, encoding="latin1")
        if "data" not in entry or label_key not in entry:
            raise ValueError(f"{Path(directory) / name} lacks 'data' or {label_key!r}")
        data = np.asarray(entry["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(entry[label_key]) != len(data):
            raise ValueError(f"{Path(directory) / name} is not a CIFAR batch: {data.shape}")
        images.append(data)
        labels.extend(entry[label_key])
    x = torch.from_numpy(np.concatenate(images).reshape(-1, 3, 32, 32))
    return x, torch.tensor(labels, dtype=torch.int64)


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

    mat = scipy.io.loadmat(str(path))
    if "X" not in mat or "y" not in mat or mat["X"].ndim != 4:
        raise ValueError(f"{path} is not an SVHN .mat file (needs X of 32x32x3xN and y)")
    x = torch.from_numpy(np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1)), np.uint8))
    y = torch.from_numpy(mat["y"].astype(np.int64).reshape(-1))
    if y.numel() != x.shape[0]:
        raise ValueError(f"{path} has {x.shape[0]} images but {y.numel()} labels")
    return x, torch.where(y == 10, 0, y)
