"""Raw datasets as tensors (or file lists), read from the data directory; downloads on request.

Each reader returns a ``Raw``: the official train and test splits, the class names, and where
they came from. Files are checked here first, so a missing dataset raises ``DatasetMissing``
listing exactly the files to place; torchvision is used to download (it verifies md5 sums) and
to read MNIST's uncompressed files, the other formats are read by ``readers`` (see there why).

A file that is there but damaged raises ``DataFileError`` naming it (never "not found"), and
a download that fails raises ``DownloadFailed`` with the URL and the reason.

Where each dataset is looked for (torchvision's layout, under the data directory):

======================  =================================================================
digits                  bundled with scikit-learn (no files)
mnist, fashion_mnist    MNIST/raw/, FashionMNIST/raw/: the four IDX files, raw or .gz
cifar10, cifar100       cifar-10-batches-py/, cifar-100-python/ (python-pickle batches)
svhn, svhn_extra        SVHN/: train_32x32.mat, test_32x32.mat (+ extra_32x32.mat)
imagenet                imagenet/train/<class>/*.JPEG, imagenet/val/<class>/*.JPEG
======================  =================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.error import URLError

import numpy as np
import torch

from grownet.data.dirs import DatasetMissing, DownloadFailed, missing_files
from grownet.data.encoding import TableSplit
from grownet.data.readers import (
    REDOWNLOAD,
    read_cifar_batches,
    read_cifar_classes,
    read_idx,
    read_svhn_mat,
)
from grownet.data.splits import FolderSplit, Split
from grownet.errors import DataFileError

if TYPE_CHECKING:  # grownet.data.text builds its Raw from this module
    from grownet.data.text import TextSplit

__all__ = [
    "Raw",
    "read_cifar",
    "read_digits",
    "read_image_folder",
    "read_mnist_like",
    "read_svhn",
]


@dataclass(eq=False)
class Raw:
    """A dataset's official splits as read from disk, with provenance.

    Your own data (``grownet.data.user``) may also bring a ``val`` split of its own (an image
    tree's ``val/`` folder beside ``test/``, a text's 5 %), its preprocessing ``family``, and a
    ``finish`` step: ``finish(train, val, test, preprocessing)`` runs once the validation
    hold-out and training subset are drawn, fits what must be fitted on the training split
    alone (a tabular encoding, an image tree's channel statistics) and returns ``(train, val,
    test, preprocess, extra provenance)``.
    """

    train: Split | FolderSplit | TableSplit | TextSplit
    test: Split | FolderSplit | TableSplit | TextSplit
    classes: tuple[str, ...]
    directory: str | None
    files: dict[str, int] = field(default_factory=dict)  # file name -> size in bytes
    reader: str = ""
    val: Split | FolderSplit | TableSplit | TextSplit | None = None
    family: str = ""
    finish: Callable[..., tuple] | None = None


def _sizes(directory: Path, names: list[str]) -> dict[str, int]:
    """Sizes of the files actually present (the raw or the .gz form of each name)."""
    sizes = {}
    for name in names:
        for option in name.split("|"):
            if (directory / option).is_file():
                sizes[option] = (directory / option).stat().st_size
                break
    return sizes


def _require(
    title: str, directory: Path, expected: list[str], download: Callable | None, url: str = ""
) -> None:
    """Raise ``DatasetMissing`` unless every expected file is there (downloading if asked).

    A failed download (``url`` is where it fetches from) raises ``DownloadFailed``.
    """
    if missing_files(directory, expected) and download is not None:
        try:
            download()
        # URLError (an OSError): no network or a refused connection; OSError: sockets, a
        # read-only directory; RuntimeError: torchvision's "Error downloading" and checksums.
        except (URLError, OSError, RuntimeError) as err:
            reason = getattr(err, "reason", None) or err
            raise DownloadFailed(title, url, directory, str(reason)[:300]) from err
    if missing_files(directory, expected):
        raise DatasetMissing(title, directory, expected)


# --------------------------------------------------------------------------- digits


def read_digits() -> Raw:
    """scikit-learn's 8×8 digits (1,797 images, values 0..16) with a fixed 75/25 split.

    The split is stratified with ``random_state=0`` whatever the run's seed, so every run,
    and every paper table, sees the same test set. Images are uint8 0..16.

    >>> raw = read_digits()
    >>> len(raw.train), len(raw.test), raw.train.image_shape
    (1347, 450, (1, 8, 8))
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.uint8)).unsqueeze(1)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    train_idx, test_idx = train_test_split(
        np.arange(len(y)), test_size=0.25, stratify=bunch.target, random_state=0
    )
    train_idx, test_idx = torch.from_numpy(np.sort(train_idx)), torch.from_numpy(np.sort(test_idx))
    split = Split(x, y)
    return Raw(
        split.subset(train_idx),
        split.subset(test_idx),
        tuple(str(c) for c in bunch.target_names),
        None,
        reader="sklearn.datasets.load_digits + train_test_split(0.25, stratified, random_state=0)",
    )


# --------------------------------------------------------------------------- MNIST family

_IDX_FILES = [
    "train-images-idx3-ubyte|train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte|train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte|t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte|t10k-labels-idx1-ubyte.gz",
]


def read_mnist_like(kind: str, data_dir: Path, *, download: bool) -> Raw:
    """MNIST (``kind="mnist"``) or Fashion-MNIST (``"fashion_mnist"``) from ``data_dir``.

    Looks in ``data_dir/MNIST/raw`` or ``data_dir/FashionMNIST/raw`` (torchvision's layout).
    With all four files uncompressed, torchvision reads them; with only the .gz files (as
    downloaded from the web) grownet's IDX reader does. Images are uint8 N×1×28×28.
    """
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST}.get(kind)
    if cls is None:
        raise ValueError(f"kind must be 'mnist' or 'fashion_mnist', got {kind!r}")
    directory = Path(data_dir) / cls.__name__ / "raw"
    fetch = (lambda: cls(str(data_dir), train=True, download=True)) if download else None
    _require(cls.__name__, directory, _IDX_FILES, fetch, cls.mirrors[0])
    uncompressed = not missing_files(directory, [n.split("|")[0] for n in _IDX_FILES])
    splits = []
    for prefix in ("train", "t10k"):
        if uncompressed:
            try:
                ds = cls(str(data_dir), train=prefix == "train", download=False)
                x, y = ds.data, ds.targets
            # torchvision reports a damaged file as a shape RuntimeError, a failed assert or
            # a KeyError: grownet's reader says which file is damaged and how.
            except (RuntimeError, AssertionError, KeyError, ValueError, TypeError) as err:
                _read_idx_pair(directory, prefix)  # raises DataFileError naming the file
                raise DataFileError(
                    directory, f"torchvision cannot read it ({err}); {REDOWNLOAD}"
                ) from err
        else:
            x, y = _read_idx_pair(directory, prefix)
        splits.append(Split(x.unsqueeze(1).contiguous(), y.long()))
    return Raw(
        *splits,
        classes=tuple(cls.classes),
        directory=str(directory),
        files=_sizes(directory, _IDX_FILES),
        reader=f"torchvision.datasets.{cls.__name__}" if uncompressed else "grownet IDX (.gz)",
    )


def _read_idx_pair(directory: Path, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``prefix`` split's images (N×H×W) and labels (N), checked to match each other."""
    names = [
        directory / f"{prefix}-{kind}-idx{n}-ubyte" for kind, n in (("images", 3), ("labels", 1))
    ]
    x, y = (read_idx(name) for name in names)
    # Name the file actually read: the raw one, or else its .gz.
    images, labels = (p if p.is_file() else p.with_name(p.name + ".gz") for p in names)
    if x.ndim != 3 or x.dtype != torch.uint8:
        raise DataFileError(images, f"holds {x.dtype} {tuple(x.shape)}, not N images; {REDOWNLOAD}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataFileError(
            labels, f"holds {tuple(y.shape)} labels for {len(x)} images; {REDOWNLOAD}"
        )
    return x, y


# --------------------------------------------------------------------------- CIFAR

_CIFAR = {
    # kind: (folder, train files, test files, meta file, label key, class-names key, title)
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "batches.meta",
        "labels",
        "label_names",
        "CIFAR-10",
    ),
    "cifar100": (
        "cifar-100-python",
        ["train"],
        ["test"],
        "meta",
        "fine_labels",
        "fine_label_names",
        "CIFAR-100",
    ),
}


def read_cifar(kind: str, data_dir: Path, *, download: bool) -> Raw:
    """CIFAR-10 or CIFAR-100 (``kind``) from torchvision's python-pickle folder in ``data_dir``.

    torchvision's own loader refuses any file whose md5 differs from the official release;
    ``read_cifar_batches`` parses the same pickles without that check (torchvision still
    verifies a download). Images are uint8 N×3×32×32; CIFAR-100 uses the 100 fine labels.
    """
    if kind not in _CIFAR:
        raise ValueError(f"kind must be one of {tuple(_CIFAR)}, got {kind!r}")
    folder, train_files, test_files, meta, label_key, names_key, title = _CIFAR[kind]
    directory = Path(data_dir) / folder
    expected = [*train_files, *test_files, meta]

    import torchvision.datasets as tvd

    cls = tvd.CIFAR10 if kind == "cifar10" else tvd.CIFAR100
    fetch = (lambda: cls(str(data_dir), train=True, download=True)) if download else None
    _require(title, directory, expected, fetch, cls.url)
    train = Split(*read_cifar_batches(directory, train_files, label_key=label_key))
    test = Split(*read_cifar_batches(directory, test_files, label_key=label_key))
    classes = read_cifar_classes(directory / meta, names_key)
    return Raw(
        train,
        test,
        classes,
        str(directory),
        _sizes(directory, expected),
        "grownet CIFAR pickle reader",
    )


# --------------------------------------------------------------------------- SVHN


def read_svhn(data_dir: Path, *, download: bool, extra: bool = False) -> Raw:
    """SVHN's cropped digits from ``data_dir/SVHN``; ``extra=True`` adds the 531k extra images.

    Training uses ``train_32x32.mat`` (73,257 images), plus ``extra_32x32.mat`` when ``extra``
    (the stochastic-depth paper trains on both). Labels are 0..9 (the file's 10 means 0).
    """
    directory = Path(data_dir) / "SVHN"
    parts = ["train", "test"] + (["extra"] if extra else [])
    expected = [f"{p}_32x32.mat" for p in parts]

    import torchvision.datasets as tvd

    def fetch() -> None:
        for p in parts:
            if missing_files(directory, [f"{p}_32x32.mat"]):
                tvd.SVHN(str(directory), split=p, download=True)

    url = tvd.SVHN.split_list["train"][0].rsplit("/", 1)[0] + "/"
    _require("SVHN", directory, expected, fetch if download else None, url)
    loaded = {p: read_svhn_mat(directory / f"{p}_32x32.mat") for p in parts}
    if extra:
        x = torch.cat([loaded["train"][0], loaded["extra"][0]])
        y = torch.cat([loaded["train"][1], loaded["extra"][1]])
        loaded["train"] = (x, y)
    return Raw(
        Split(*loaded["train"]),
        Split(*loaded["test"]),
        tuple(str(d) for d in range(10)),
        str(directory),
        _sizes(directory, expected),
        "grownet SVHN .mat reader (scipy.io.loadmat)",
    )


# --------------------------------------------------------------------------- image folders


def read_image_folder(data_dir: Path, *, title: str = "ImageNet", folder: str = "imagenet") -> Raw:
    """File lists of an ImageFolder tree ``data_dir/folder/{train,val}/<class>/<image>``.

    ``val`` plays the test set (ImageNet papers report validation error). Its classes must
    be among the training classes, and keep the training class indices.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    directory = Path(data_dir) / folder
    expected = ["train/<class>/<images>", "val/<class>/<images>"]
    fix = f"place the {title} class folders there ({title} cannot be downloaded automatically)"
    if not all((directory / s).is_dir() for s in ("train", "val")):
        raise DatasetMissing(title, directory, expected, fix=fix)
    try:
        classes, class_to_idx = find_classes(directory / "train")
        val_classes, _ = find_classes(directory / "val")
    except FileNotFoundError as err:
        raise DatasetMissing(title, directory, expected, fix=fix) from err
    unknown = sorted(set(val_classes) - set(classes))
    if unknown:
        raise ValueError(f"{directory / 'val'} has classes not in train/: {unknown[:5]}")
    splits = []
    for sub in ("train", "val"):
        samples = make_dataset(
            directory / sub, class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=sub == "val"
        )
        paths = tuple(p for p, _ in samples)
        labels = torch.tensor([c for _, c in samples], dtype=torch.int64)
        splits.append(FolderSplit(paths, labels, tuple(classes)))
    return Raw(
        *splits,
        classes=tuple(classes),
        directory=str(directory),
        files={"train": len(splits[0]), "val": len(splits[1])},  # image counts, not bytes
        reader="torchvision.datasets.folder.make_dataset",
    )
