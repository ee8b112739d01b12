"""The dataset registry, ``load_dataset`` and ``make_loader``: what the trainer calls.

``load_dataset`` reads a dataset's official splits, optionally holds out a seeded, stratified
validation set and takes a training subset, then builds the preprocessing recipe from the
final training images (so a per-pixel mean never sees validation or test data).

Besides the registry's names, a dataset may be your own data, named with a scheme
(``grownet.data.names``): ``imagefolder:PATH?size=32``, ``npz:PATH``, ``pt:PATH``,
``csv:PATH?target=COLUMN``. Whatever they fit (a tabular encoding, channel statistics) is
fitted on the final training split too, and recorded in ``source``.

Text (``tinyshakespeare``, ``text:PATH?context=64&level=char``, see ``grownet.data.text``) is a
token stream split contiguously 90/5/5 into ``TextSplit`` train/val/test: it brings its own
validation split, so ``val_size`` and ``folds`` are refused, and ``train_size`` keeps the first
``train_size`` training windows (the tokens they span) rather than a stratified draw.
"""

import os
import types
from dataclasses import dataclass, field
from pathlib import Path

import torch

from grownet.data.arrays import read_arrays
from grownet.data.dirs import resolve_data_dir
from grownet.data.imagefolder import read_user_image_folder
from grownet.data.loader import BatchLoader, derive_seed
from grownet.data.names import is_scheme_name, parse_name
from grownet.data.preprocess import Preprocess, recipe, recipes_for
from grownet.data.sources import (
    Raw,
    read_cifar,
    read_digits,
    read_image_folder,
    read_mnist_like,
    read_svhn,
)
from grownet.data.splits import (
    FolderSplit,
    Split,
    fold_indices,
    held_out,
    stratified_indices,
    validation_size,
)
from grownet.data.stream import StreamLoader
from grownet.data.tabular import SKLEARN_TABLES, read_csv_table, read_sklearn_table
from grownet.data.text import TextLoader, TextSplit, read_text, read_tinyshakespeare
from grownet.errors import BadValueError

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetInfo",
    "held_out_size",
    "load_dataset",
    "make_loader",
]

# Tags that keep the validation draw and the subset draw independent for the same seed.
_VALIDATION, _SUBSET = 11, 12


@dataclass(frozen=True)
class DatasetInfo:
    """What grownet knows about a dataset before reading it."""

    name: str
    title: str
    family: str  # which preprocessing recipes apply (see grownet.data.preprocess)
    num_classes: int
    # (C, H, W) images (imagenet: the default 224 crop), (F,) tables, (context,) text
    in_shape: tuple[int, ...]
    location: str  # where under the data directory its files go
    streamed: bool = False  # too large for memory: a FolderSplit and a StreamLoader

    @property
    def preprocessings(self) -> tuple[str, ...]:
        """The ``preprocessing=`` names this dataset accepts."""
        return recipes_for(self.family)


def _info(*args, **kwargs) -> tuple[str, DatasetInfo]:
    info = DatasetInfo(*args, **kwargs)
    return info.name, info


DATASETS = types.MappingProxyType(
    dict(
        [
            _info("digits", "sklearn digits", "digits", 10, (1, 8, 8), "(bundled with sklearn)"),
            _info("mnist", "MNIST", "mnist", 10, (1, 28, 28), "MNIST/raw"),
            _info("fashion_mnist", "Fashion-MNIST", "mnist", 10, (1, 28, 28), "FashionMNIST/raw"),
            _info("cifar10", "CIFAR-10", "cifar", 10, (3, 32, 32), "cifar-10-batches-py"),
            _info("cifar100", "CIFAR-100", "cifar", 100, (3, 32, 32), "cifar-100-python"),
            _info("svhn", "SVHN", "svhn", 10, (3, 32, 32), "SVHN"),
            _info("svhn_extra", "SVHN train+extra", "svhn", 10, (3, 32, 32), "SVHN"),
            _info("imagenet", "ImageNet", "imagenet", 1000, (3, 224, 224), "imagenet", True),
            _info("iris", "iris (sklearn)", "features", 3, (4,), "(bundled with sklearn)"),
            _info("wine", "wine (sklearn)", "features", 3, (13,), "(bundled with sklearn)"),
            _info(
                "breast_cancer",
                "breast cancer (sklearn)",
                "features",
                2,
                (30,),
                "(bundled with sklearn)",
            ),
            _info(
                "tinyshakespeare",
                "Tiny Shakespeare",
                "text",
                65,
                (64,),
                "tinyshakespeare/input.txt",
            ),
        ]
    )
)
"""Registry of dataset names (read-only mapping name -> ``DatasetInfo``)."""

_READERS = {
    "digits": lambda d, download: read_digits(),
    "mnist": lambda d, download: read_mnist_like("mnist", d, download=download),
    "fashion_mnist": lambda d, download: read_mnist_like("fashion_mnist", d, download=download),
    "cifar10": lambda d, download: read_cifar("cifar10", d, download=download),
    "cifar100": lambda d, download: read_cifar("cifar100", d, download=download),
    "svhn": lambda d, download: read_svhn(d, download=download),
    "svhn_extra": lambda d, download: read_svhn(d, download=download, extra=True),
    "imagenet": lambda d, download: read_image_folder(d),
    "tinyshakespeare": lambda d, download: read_tinyshakespeare(d),
    **{name: (lambda d, download, n=name: read_sklearn_table(n)) for name in SKLEARN_TABLES},
}


@dataclass(eq=False)
class Dataset:
    """A loaded dataset: splits, shapes, the preprocessing to apply, and provenance.

    ``train``/``val``/``test`` are ``Split`` (uint8 images or encoded features in memory),
    for streamed image folders ``FolderSplit``, for text ``TextSplit`` (windows of a token
    stream); ``make_loader`` turns each into batches. ``source`` is JSON-ready (a table's
    fitted encoding is its ``"encoding"``, a text's level, vocabulary and split its ``"text"``).
    ``classes`` names the outputs: class names, or a text's vocabulary (one character per id;
    at the byte level a byte's two hex digits).
    """

    name: str
    train: Split | FolderSplit | TextSplit
    test: Split | FolderSplit | TextSplit
    val: Split | FolderSplit | TextSplit | None
    num_classes: int
    in_shape: tuple[int, ...]
    preprocess: Preprocess
    source: dict = field(default_factory=dict)
    classes: tuple[str, ...] = ()

    @property
    def per_token(self) -> bool:
        """Whether every position of a sample has its label (text: the next token), so a
        network is judged by its loss per token rather than by accuracy."""
        return isinstance(self.train, TextSplit)


def _check_size(name: str, value: object, *, low: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def _normalise_name(name: object) -> str:
    if not isinstance(name, str):
        raise ValueError(f"name must be a str, got {name!r}")
    key = name.strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}, or name your own "
            "data: imagefolder:PATH, npz:PATH, pt:PATH, csv:PATH?target=COLUMN or text:PATH"
        )
    return key


def _read_user(name: str, directory: Path) -> tuple[str, Raw]:
    """A scheme name's canonical text and its ``Raw`` (see ``grownet.data.names``)."""
    parsed = parse_name(name)
    path = parsed.resolve(directory)
    if parsed.scheme == "imagefolder":
        raw = read_user_image_folder(path, int(parsed.options["size"]), directory)
    elif parsed.scheme == "csv":
        raw = read_csv_table(path, str(parsed.options["target"]))
    elif parsed.scheme == "text":
        level, context = str(parsed.options["level"]), int(parsed.options["context"])
        raw = read_text(path, level=level, context=context)
    else:
        raw = read_arrays(path, parsed.scheme)
    return parsed.text, raw


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = False,
    train_size: int | None = None,
    val_size: int = 0,
    seed: int = 0,
    preprocessing: str = "paper",
    folds: int = 0,
    fold: int = 0,
) -> Dataset:
    """Load dataset ``name`` (a key of ``DATASETS``, or your own data as ``SCHEME:PATH``: see
    ``grownet.data.names``) with the splits and recipe asked for.

    ``val_size`` samples are held out of the official training set (seeded, stratified: the
    stochastic-depth paper's 45k/5k CIFAR split is ``val_size=5000``); then ``train_size``
    (if given) takes a seeded stratified subset of what is left. The test split is always the
    official one. ``folds`` > 1 holds out fold ``fold`` of a stratified, seeded ``folds``-fold
    partition of the training set instead (cross-validation; not with ``val_size``). Text is
    split 90/5/5 in order (no ``val_size``, no ``folds``), and its ``train_size`` is the first
    ``train_size`` training windows. Nothing is downloaded unless ``download=True``; a dataset
    not on disk raises ``DatasetMissing`` (a ``FileNotFoundError``) naming the files to place.

    >>> ds = load_dataset("digits", val_size=100, seed=1)
    >>> len(ds.train), len(ds.val), len(ds.test), ds.in_shape, ds.num_classes
    (1247, 100, 450, (1, 8, 8), 10)
    """
    user = is_scheme_name(name)
    key = name if user else _normalise_name(name)
    if not isinstance(download, bool):
        raise ValueError(f"download must be a bool, got {download!r}")
    _check_size("train_size", train_size, low=1, allow_none=True)
    _check_size("val_size", val_size, low=0)
    _check_size("seed", seed, low=0)
    if not user:
        _check_preprocessing(key, DATASETS[key].family, preprocessing)
    directory = resolve_data_dir(data_dir)
    if user:
        key, raw = _read_user(name, directory)
        _check_preprocessing(key, raw.family, preprocessing)
    else:
        raw = _READERS[key](directory, download)

    train, val = raw.train, raw.val
    n = len(train)
    if isinstance(train, TextSplit) and (val_size or folds):
        option = f"val_size {val_size}" if val_size else f"folds {folds}"
        raise BadValueError(f"{key}: text is split in order, 90/5/5 into train/val/test, so "
                            f"it has its validation split already; drop {option}")  # fmt: skip
    if val is not None and val_size:
        raise BadValueError(
            f"{key} ships a validation split (val/ beside test/); drop val_size {val_size}"
        )
    if val_size >= n:
        raise ValueError(f"val_size must be < {n} (the training samples of {key}), got {val_size}")
    if folds and (val_size or val is not None):
        raise BadValueError(f"{key}: folds = {folds} holds folds of the training set out; it "
                            "excludes val_size and a dataset's own val/: drop one")  # fmt: skip
    if val_size:
        keep, held = held_out(train.y, val_size, seed=derive_seed(seed, _VALIDATION))
        train, val = train.subset(keep), train.subset(held)
    elif folds:
        keep, held = fold_indices(train.y, folds, fold, seed=derive_seed(seed, _VALIDATION))
        train, val = train.subset(keep), train.subset(held)
    if train_size is not None:
        if train_size > len(train):
            raise ValueError(
                f"train_size must be <= {len(train)} ({n} training samples of {key} minus "
                f"val_size {val_size}), got {train_size}"
            )
        if isinstance(train, TextSplit):  # contiguous: the first train_size windows
            train = train.head(train_size)
        else:
            train = train.subset(
                stratified_indices(train.y, train_size, seed=derive_seed(seed, _SUBSET))
            )

    test, extra = raw.test, {}
    if raw.finish is not None:  # fitted here: on the final training split only
        train, val, test, preprocess, extra = raw.finish(train, val, test, preprocessing)
    else:
        family = raw.family or DATASETS[key].family
        preprocess = recipe(family, preprocessing, train.x if isinstance(train, Split) else None)
    if isinstance(train, Split):
        in_shape = train.image_shape
    elif isinstance(train, TextSplit):
        in_shape = train.in_shape
    else:
        in_shape = (train.channels or 3, preprocess.crop, preprocess.crop)
    source = {
        "dataset": key,
        "directory": raw.directory,
        "files": dict(raw.files),
        "reader": raw.reader,
        "split_seed": seed,
        "val_size": val_size,
        **({"folds": folds, "fold": fold} if folds else {}),
        "train_size": train_size,
        "sizes": {
            "train": len(train),
            "val": 0 if val is None else len(val),
            "test": len(test),
        },
        "preprocessing": preprocess.describe(),
        **({"classes": list(raw.classes)} if user else {}),
        **extra,
    }
    return Dataset(
        name=key,
        train=train,
        test=test,
        val=val,
        num_classes=len(raw.classes) if raw.classes else DATASETS[key].num_classes,
        in_shape=in_shape,
        preprocess=preprocess,
        source=source,
        classes=raw.classes,
    )


def held_out_size(
    name: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = False,
    fraction: float = 0.1,
    min_size: int = 1000,
    max_share: float = 0.25,
) -> int:
    """The ``val_size`` that gives dataset ``name`` a validation split for decisions: 0 when
    it ships its own (``val/``: that one is used), else :func:`validation_size` of its
    training set.

    >>> held_out_size("digits"), held_out_size("wine")
    (336, 33)
    """
    ds = load_dataset(name, data_dir=data_dir, download=download)
    if ds.val is not None:
        return 0
    return validation_size(len(ds.train), fraction=fraction, min_size=min_size,
                           max_share=max_share)  # fmt: skip


def _check_preprocessing(key: str, family: str, preprocessing: str) -> None:
    offered = recipes_for(family)
    if preprocessing not in offered:
        raise ValueError(f"preprocessing must be one of {offered} for {key}, got {preprocessing!r}")


def make_loader(
    split: Split | FolderSplit | TextSplit,
    *,
    batch_size: int,
    preprocess: Preprocess,
    train: bool,
    seed: int = 0,
    device: str | torch.device = "cpu",
    drop_last: bool | None = None,
    channels_last: bool = False,
    num_workers: int | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> BatchLoader | StreamLoader:
    """A ``BatchLoader`` for an in-memory split, a ``StreamLoader`` for a folder split, a
    ``TextLoader`` (a ``BatchLoader`` of token windows: x and y each N×context int64) for text.

    ``num_workers`` only matters for folder splits (in-memory batches need no workers); by
    default 4, or the CPU count where that is smaller (more decoders than cores only contend).
    ``rank``/``world_size``: each data-parallel rank takes its own shard of every epoch.

    >>> ds = load_dataset("digits")
    >>> loader = make_loader(ds.train, batch_size=64, preprocess=ds.preprocess, train=True)
    >>> x, y = loader.next_batch()
    >>> tuple(x.shape), float(x.max()) <= 1.0
    ((64, 1, 8, 8), True)
    """
    options = dict(
        batch_size=batch_size,
        preprocess=preprocess,
        train=train,
        seed=seed,
        device=device,
        drop_last=drop_last,
        channels_last=channels_last,
        rank=rank,
        world_size=world_size,
    )
    if isinstance(split, FolderSplit):
        workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
        return StreamLoader(split, num_workers=workers, **options)
    if isinstance(split, Split):
        return BatchLoader(split, **options)
    if isinstance(split, TextSplit):
        return TextLoader(split, **options)
    raise ValueError(
        f"split must be a Split, a FolderSplit or a TextSplit, got {type(split).__name__}"
    )
