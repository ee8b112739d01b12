"""Arrays as a dataset: ``npz:PATH`` (NumPy) and ``pt:PATH`` (PyTorch).

The file holds ``x`` (N×C×H×W images or N×F features) and integer class labels ``y`` (N),
optionally ``x_test`` and ``y_test``; without them a fixed stratified quarter of the samples is
the test set. Write one with ``np.savez(path, x=x, y=y)`` or ``torch.save({"x": x, "y": y},
path)``. Reading runs no code from the file: ``np.load(allow_pickle=False)`` and
``torch.load(weights_only=True)``, so an archive holding Python objects is refused, by name.

uint8 images are kept as bytes and scaled like any image (x/255, then per-channel statistics
of the training split); float images are standardised per channel; features (N×F) are
standardised per column, fitted on the training split (``grownet.data.encoding``).
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from grownet.data.dirs import require_file
from grownet.data.encoding import TableSplit
from grownet.data.sources import Raw
from grownet.data.splits import Split, fixed_test_split
from grownet.data.tabular import encode_finish
from grownet.errors import DataFileError

__all__ = ["read_arrays"]

_KEYS = ("x", "y", "x_test", "y_test")
_SAVE = {
    "npz": "np.savez(PATH, x=x, y=y) (optionally x_test=..., y_test=...)",
    "pt": 'torch.save({"x": x, "y": y}, PATH) (optionally "x_test", "y_test")',
}


def read_arrays(path: Path, kind: str) -> Raw:
    """The dataset in ``path``, a ``kind`` ("npz" or "pt") file; mistakes name the file.

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "d.npz"
    >>> np.savez(f, x=np.random.rand(40, 5), y=np.arange(40) % 2)
    >>> raw = read_arrays(f, "npz")
    >>> len(raw.train), len(raw.test), raw.classes, raw.family
    (30, 10, ('0', '1'), 'features')
    """
    if kind not in _SAVE:
        raise ValueError(f"kind must be 'npz' or 'pt', got {kind!r}")
    require_file(path, f"a .{kind} file")
    arrays = _load_npz(path) if kind == "npz" else _load_pt(path)
    unknown = sorted(set(arrays) - set(_KEYS))
    if unknown or "x" not in arrays or "y" not in arrays:
        held = ", ".join(sorted(arrays)) or "nothing"
        raise DataFileError(
            path,
            f"holds {held}; expected arrays x and y (and optionally "
            f"x_test, y_test): save with {_SAVE[kind]}",
        )
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataFileError(path, "holds only one of x_test and y_test; save both or neither")
    x, y = _samples(path, arrays["x"], "x"), _labels(path, arrays["y"], "y")
    _same_length(path, x, y, "x", "y")
    if "x_test" in arrays:
        x_test = _samples(path, arrays["x_test"], "x_test")
        y_test = _labels(path, arrays["y_test"], "y_test")
        _same_length(path, x_test, y_test, "x_test", "y_test")
        if x_test.shape[1:] != x.shape[1:]:
            raise DataFileError(
                path, f"x_test's samples are {_dims(x_test)}, x's {_dims(x)}; they must agree"
            )
    else:
        keep, held = (i.numpy() for i in fixed_test_split(torch.from_numpy(y)))
        x, x_test, y, y_test = x[keep], x[held], y[keep], y[held]
    n_classes = int(max(y.max(), y_test.max() if len(y_test) else 0)) + 1
    if len(np.unique(y)) < 2:
        raise DataFileError(
            path, f"y holds one class only ({int(y[0])}); a classifier needs two or more"
        )
    classes = tuple(str(c) for c in range(n_classes))
    files = {path.name: path.stat().st_size}
    reader = "numpy.load(allow_pickle=False)" if kind == "npz" else "torch.load(weights_only=True)"
    common = {"directory": str(path.parent), "files": files, "reader": reader}
    if x.ndim == 2:  # features: standardised once the training split is final
        names = tuple(f"x{j}" for j in range(x.shape[1]))
        splits = [_table(a, b, names) for a, b in ((x, y), (x_test, y_test))]
        return Raw(
            *splits, classes, **common, family="features", finish=encode_finish(classes, None)
        )
    uint8 = x.dtype == np.uint8 and x_test.dtype == np.uint8
    dtype = torch.uint8 if uint8 else torch.float32
    splits = [
        Split(torch.from_numpy(np.ascontiguousarray(a)).to(dtype), torch.from_numpy(b))
        for a, b in ((x, y), (x_test, y_test))
    ]
    return Raw(*splits, classes, **common, family="images" if uint8 else "float_images")


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        archive = np.load(path, allow_pickle=False)
    # numpy's own reasons talk of allow_pickle, which grownet never sets: not shown.
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        raise DataFileError(
            path, f"is not a NumPy .npz archive; save with {_SAVE['npz']}"
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataFileError(path, f"is a single .npy array; save x and y together: {_SAVE['npz']}")
    arrays = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError as err:  # object arrays need pickle, which is never allowed
                raise DataFileError(
                    path, f"array {key!r} holds Python objects ({err}); save numeric arrays"
                ) from None
            except (OSError, EOFError, zipfile.BadZipFile) as err:
                raise DataFileError(path, f"array {key!r} is damaged ({err})") from None
    return arrays


def _load_pt(path: Path) -> dict[str, np.ndarray]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message is a page on how to load unsafely; the refused global is what counts.
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        what = f" ({found.group(1)})" if found else ""
        raise DataFileError(
            path,
            f"holds Python objects{what} that torch.load(weights_only=True) will not run; "
            f"save tensors only: {_SAVE['pt']}",
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError):
        raise DataFileError(path, f"is not a PyTorch file; save with {_SAVE['pt']}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise DataFileError(
            path, f"holds a {type(data).__name__}, not a dict of tensors; save with {_SAVE['pt']}"
        )
    arrays = {}
    for key, value in data.items():
        if not isinstance(value, torch.Tensor):
            raise DataFileError(path, f"entry {key!r} is a {type(value).__name__}, not a tensor")
        arrays[key] = value.detach().cpu().numpy()
    return arrays


def _dims(a: np.ndarray) -> str:
    return "x".join(str(d) for d in a.shape[1:]) or "scalars"


def _samples(path: Path, a: np.ndarray, name: str) -> np.ndarray:
    """``a`` checked as N×C×H×W or N×F numbers; features come back as float64."""
    if a.ndim == 3:
        raise DataFileError(
            path,
            f"{name} is {a.shape}: NxHxW images need a channel axis; "
            f"save {name}[:, None] (Nx1xHxW)",
        )
    if a.ndim not in (2, 4):
        raise DataFileError(
            path, f"{name} has shape {a.shape}; expected NxCxHxW images or NxF features"
        )
    if a.shape[0] == 0 or 0 in a.shape[1:]:
        raise DataFileError(path, f"{name} has shape {a.shape}: no samples or no features")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or np.iscomplexobj(a):
        raise DataFileError(path, f"{name} holds {a.dtype}; save real numbers")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise DataFileError(
            path,
            f"{name} holds NaN or infinite values (first at {where}); "
            "fill in or drop those samples",
        )
    if a.ndim == 2:
        return a.astype(np.float64)
    return a if a.dtype == np.uint8 else a.astype(np.float32)


def _labels(path: Path, a: np.ndarray, name: str) -> np.ndarray:
    if a.ndim != 1:
        raise DataFileError(
            path,
            f"{name} has shape {a.shape}; save one class index per "
            "sample (a 1-D array, not one-hot)",
        )
    if not np.issubdtype(a.dtype, np.integer):
        raise DataFileError(
            path,
            f"{name} holds {a.dtype} labels; a classifier needs integer "
            f"class indices 0..K-1: save {name}.astype(int) (regression "
            "targets are not supported)",
        )
    if len(a) and a.min() < 0:
        raise DataFileError(
            path, f"{name} holds the negative label {int(a.min())}; class indices start at 0"
        )
    return a.astype(np.int64)


def _same_length(path: Path, x: np.ndarray, y: np.ndarray, xn: str, yn: str) -> None:
    if len(x) != len(y):
        raise DataFileError(
            path, f"{xn} has {len(x)} samples but {yn} {len(y)} labels; they must match one to one"
        )


def _table(x: np.ndarray, y: np.ndarray, names: tuple[str, ...]) -> TableSplit:
    empty = np.zeros((len(y), 0), dtype=object)
    return TableSplit(x, empty, torch.from_numpy(y), names)
