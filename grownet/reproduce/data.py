"""Whether a recipe's datasets are on disk, told from file names alone (nothing is loaded).

The files each dataset needs are those :mod:`grownet.data.sources` reads (torchvision's layout
under the data directory); ``--list`` and the ``not run: <data> missing`` verdict use this, so
a listing of every recipe takes no time whatever the datasets' sizes.
"""

from __future__ import annotations

from pathlib import Path

from grownet.data.dirs import missing_files, resolve_data_dir

_IDX = [
    f"{split}-{kind}-ubyte|{split}-{kind}-ubyte.gz"
    for split in ("train", "t10k")
    for kind in ("images-idx3", "labels-idx1")
]
# dataset -> (folder under the data directory, files expected there); None: nothing on disk.
DATA_FILES: dict[str, tuple[str, list[str]] | None] = {
    "digits": None,  # bundled with scikit-learn
    "mnist": ("MNIST/raw", _IDX),
    "fashion_mnist": ("FashionMNIST/raw", _IDX),
    "cifar10": ("cifar-10-batches-py",
                [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]),
    "cifar100": ("cifar-100-python", ["train", "test", "meta"]),
    "svhn": ("SVHN", ["train_32x32.mat", "test_32x32.mat"]),
    "svhn_extra": ("SVHN", ["train_32x32.mat", "test_32x32.mat", "extra_32x32.mat"]),
    "imagenet": ("imagenet", ["train/", "val/"]),  # ImageFolder trees: folders, not files
    "tinyshakespeare": ("tinyshakespeare", ["input.txt"]),
}  # fmt: skip


def data_location(dataset: str, data_dir: str | Path | None) -> Path | None:
    """The folder ``dataset`` is read from (None: it needs no files)."""
    entry = DATA_FILES.get(dataset)
    return None if entry is None else resolve_data_dir(data_dir) / entry[0]


def missing_data(dataset: str, data_dir: str | Path | None) -> list[str]:
    """The files (or folders, ending in ``/``) of ``dataset`` absent under the data directory.

    >>> missing_data("digits", "/nonexistent"), missing_data("svhn", "/nonexistent")
    ([], ['train_32x32.mat', 'test_32x32.mat'])
    """
    entry = DATA_FILES.get(dataset)
    if entry is None:
        return []
    folder = resolve_data_dir(data_dir) / entry[0]
    dirs = [name for name in entry[1] if name.endswith("/")]
    files = [name for name in entry[1] if not name.endswith("/")]
    absent = [name for name in dirs if not (folder / name).is_dir()]
    return [*missing_files(folder, files), *absent]
