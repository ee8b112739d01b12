"""Your own image tree: ``imagefolder:PATH?size=S``, torchvision's ImageFolder layout.

Layout: ``PATH/train/<class>/<image>`` (required), ``PATH/test/<class>/...`` and
``PATH/val/<class>/...`` (optional). The test set is ``test/``; without it ``val/`` plays the
test set (ImageNet's convention: papers report validation error); without either, a fixed
stratified quarter of ``train/`` does (the same whatever the seed). With both, ``val/`` is the
validation split the trainer evaluates (``val_size`` must then stay 0).

Every image is resized to S×S (default 32, ignoring the aspect ratio: the same pixels whether
decoded here or by streaming workers), kept grayscale if the tree is (its first training image
decides; an image of the other kind is named as a mistake), and standardised with the per-channel
mean and std of the final training split. Trees whose decoded images fit in ``MEMORY_BYTES``
are decoded once, by worker processes, into uint8 tensors served like MNIST (no file is opened
again, not in the next epoch, nor by the next run of a search in this process); larger ones are
streamed from disk every epoch by ``StreamLoader``'s workers.

The channel statistics of a streamed tree cost a full pass over its training images, so they are
cached in the *data directory* (``.grownet-cache/imagefolder-stats/``), keyed by the training
files (paths, sizes, modification times) and the size: every run of a search or a study reads
the same tree, and each run has a directory of its own, so a cache there would never be hit.
Each run still records the statistics it used in its ``dataset.json``. An in-memory tree's
statistics are computed from its tensors, which is instant.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import OrderedDict
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from grownet.data.dirs import DatasetMissing
from grownet.data.preprocess import Preprocess, recipe
from grownet.data.sources import Raw
from grownet.data.splits import FolderSplit, Split, fixed_test_split
from grownet.data.stream import (
    _FolderImages,
    folder_transform,
    image_channels,
    open_image,
)
from grownet.errors import DataFileError
from grownet.files import atomic_write_text

__all__ = ["MEMORY_BYTES", "read_user_image_folder"]

MEMORY_BYTES = 2**30
"""Trees whose decoded uint8 images (train + val + test) take at most this many bytes are held
in memory; larger ones stream."""

# torchvision's IMG_EXTENSIONS, in the formats stream.IMAGE_FORMATS lets PIL decode.
_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")
_CACHE = ".grownet-cache/imagefolder-stats"
_DECODED: OrderedDict[str, Tensor] = OrderedDict()  # this process's decoded splits
_KEEP_DECODED = 3  # one tree's train, val and test
_LAYOUT = "train/<class>/<images>"
_FIX = "put one folder of images per class under train/ (optionally val/ and test/ beside it)"


def read_user_image_folder(root: Path, size: int, data_dir: Path) -> Raw:
    """The tree at ``root`` at ``size``×``size`` pixels (see the module docstring).

    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for c in ("cat", "dog"):
    ...     (root / "train" / c).mkdir(parents=True)
    ...     for i in range(4):
    ...         Image.new("RGB", (20, 10)).save(root / "train" / c / f"{i}.png")
    >>> raw = read_user_image_folder(root, 16, root)
    >>> len(raw.train), len(raw.test), raw.classes, raw.train.image_shape
    (6, 2, ('cat', 'dog'), (3, 16, 16))
    """
    if not (root / "train").is_dir():
        raise DatasetMissing("image tree", root, [_LAYOUT], fix=_FIX)
    classes, paths, labels = _listing(root / "train", None)
    if len(classes) < 2:
        raise DataFileError(
            root / "train",
            f"holds one class folder ({classes[0]!r}); a classifier needs two or more: add a "
            "folder of images per class",
        )
    channels = _first_channels(paths[0])
    train = FolderSplit(paths, labels, classes, channels)
    folders = {s: root / s for s in ("val", "test") if (root / s).is_dir()}
    shipped = {
        s: FolderSplit(*_listing(f, classes)[1:], classes, channels) for s, f in folders.items()
    }
    val = shipped.get("val") if "test" in shipped else None
    test = shipped.get("test", shipped.get("val"))
    if test is None:
        keep, held = fixed_test_split(train.y)
        train, test = train.subset(keep), train.subset(held)
    count = len(train) + len(test) + (len(val) if val is not None else 0)
    in_memory = count * channels * size * size <= MEMORY_BYTES
    geometry = Preprocess(crop=size, resize=size, warp=True)  # resize to size×size, no crop
    if in_memory:
        train, test = _decode(train, geometry), _decode(test, geometry)
        val = None if val is None else _decode(val, geometry)
    # Which folder each evaluation split came from, for the run's dataset.json.
    where = {"test": "test/" if "test" in shipped else "val/" if "val" in shipped else None}
    where["test"] = where["test"] or "a fixed stratified 25% of train/"
    if val is not None:
        where["val"] = "val/"
    return Raw(
        train,
        test,
        classes,
        str(root),
        {f"{s}/": len(split) for s, split in {"train": paths, **shipped}.items()},  # images
        f"grownet image tree at {size}x{size}, {'in memory' if in_memory else 'streamed'}",
        val=val,
        family="images",
        finish=_finisher(size, channels, data_dir, where),
    )


def _listing(folder: Path, known: tuple[str, ...] | None) -> tuple[tuple, tuple, Tensor]:
    """(classes, image paths, labels) of ``folder/<class>/**``; ``known``: the training
    classes a val/ or test/ folder's must be among (labels keep their indices)."""
    classes = tuple(
        sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    )
    if not classes:
        raise DataFileError(folder, f"holds no class folders; {_FIX}")
    if known is not None and set(classes) - set(known):
        extra = sorted(set(classes) - set(known))[:5]
        raise DataFileError(
            folder,
            f"has classes not in train/: {extra}; every class of val/ "
            "and test/ needs training images",
        )
    index = {c: k for k, c in enumerate(known or classes)}
    paths, labels = [], []
    for c in classes:
        images = sorted(
            str(p)
            for p in (folder / c).rglob("*")
            if p.suffix.lower() in _EXTENSIONS
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)
            and p.is_file()
        )
        if not images and known is None:
            raise DataFileError(
                folder / c,
                f"holds no images ({', '.join(_EXTENSIONS)}); add some or remove the folder",
            )
        paths += images
        labels += [index[c]] * len(images)
    if not paths:
        raise DataFileError(
            folder, f"holds no images ({', '.join(_EXTENSIONS)}); add some or remove the folder"
        )
    return classes, tuple(paths), torch.tensor(labels, dtype=torch.int64)


def _first_channels(path: str) -> int:
    with open_image(path) as image:
        return image_channels(image)


def _stamp(split: FolderSplit, size: int) -> str:
    """A key for ``split``'s files as they are now (paths, sizes, mtimes) at ``size``."""
    h = hashlib.sha256(f"{size},{split.channels}".encode())
    for path in split.paths:
        st = os.stat(path)
        h.update(f"\0{path}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _stack(batch: list[tuple[Tensor, int]]) -> Tensor:
    return torch.stack([image for image, _ in batch])


def _images(split: FolderSplit, geometry: Preprocess) -> DataLoader | list[Tensor]:
    """Batches of ``split``'s decoded images, in order: worker processes for large splits."""
    images = _FolderImages(split, folder_transform(geometry, train=False))
    order = [(i, 0) for i in range(len(split))]  # (index, seed): eval transforms draw nothing
    workers = 0 if len(split) < 1000 else min(4, os.cpu_count() or 1)
    if workers == 0:
        return [
            _stack([images[item] for item in order[i : i + 256]]) for i in range(0, len(order), 256)
        ]
    return DataLoader(images, batch_size=256, sampler=order, num_workers=workers, collate_fn=_stack)


def _decode(split: FolderSplit, geometry: Preprocess) -> Split:
    """``split`` decoded into uint8 N×C×S×S, once per process (later runs reuse it)."""
    key = _stamp(split, geometry.crop)
    if key not in _DECODED:
        _DECODED[key] = torch.cat(list(_images(split, geometry)))
        while len(_DECODED) > _KEEP_DECODED:
            _DECODED.popitem(last=False)
    _DECODED.move_to_end(key)
    return Split(_DECODED[key], split.y.clone())


def _finisher(size: int, channels: int, data_dir: Path, where: dict):
    def finish(
        train: Split | FolderSplit,
        val: Split | FolderSplit | None,
        test: Split | FolderSplit,
        preprocessing: str,
    ) -> tuple:
        geometry = {"crop": size, "resize": size, "warp": True}
        extra = {"image_size": size, "channels": channels, "splits": where}
        if isinstance(train, Split):
            pre = dataclasses.replace(recipe("images", preprocessing, train.x), **geometry)
            return train, val, test, pre, extra | {"in_memory": True}
        pre = recipe("images", "none")  # x/255; the statistics come from the cache
        if preprocessing != "none":  # paper and standard: the training split's statistics
            mean, std, cache = _cached_stats(train, size, data_dir)
            std = torch.where(std > 0, std, torch.ones_like(std))  # a blank channel stays as is
            pre = dataclasses.replace(
                pre, mean=mean * pre.scale, std=std * pre.scale, name=preprocessing
            )
            extra["stats_cache"] = cache
        return train, val, test, dataclasses.replace(pre, **geometry), extra | {"in_memory": False}

    return finish


def _cached_stats(split: FolderSplit, size: int, data_dir: Path) -> tuple[Tensor, Tensor, str]:
    """Per-channel mean and std (C×1×1, raw units) of ``split`` at ``size``, through the cache."""
    path = data_dir / _CACHE / f"{_stamp(split, size)[:32]}.json"
    try:
        saved = json.loads(path.read_text())
        mean, std = (torch.tensor(saved[k], dtype=torch.float64) for k in ("mean", "std"))
        if mean.shape == std.shape == (split.channels,) and saved["images"] == len(split):
            return mean.view(-1, 1, 1), std.view(-1, 1, 1), str(path)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent or unreadable: computed again and rewritten
    c = split.channels or 3
    s1, s2 = torch.zeros(c, dtype=torch.int64), torch.zeros(c, dtype=torch.int64)
    for batch in _images(split, Preprocess(crop=size, resize=size, warp=True)):
        wide = batch.to(torch.int64)
        s1 += wide.sum((0, 2, 3))
        s2 += (wide * wide).sum((0, 2, 3))
    count = len(split) * size * size
    mean = s1.double() / count
    std = (s2.double() / count - mean * mean).clamp_min(0.0).sqrt()
    record = {"mean": mean.tolist(), "std": std.tolist(), "images": len(split), "size": size}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(record) + "\n")
    except OSError:
        return mean.view(-1, 1, 1), std.view(-1, 1, 1), ""  # a read-only data dir: no cache
    return mean.view(-1, 1, 1), std.view(-1, 1, 1), str(path)
