"""Datasets and batch loaders: the papers' data, preprocessed on the device, resumable exactly.

- ``load_dataset(name, ...)`` -> ``Dataset``: splits (``Split`` uint8 tensors,
  ``FolderSplit`` file lists for ImageNet, ``TextSplit`` token streams for text), shapes, the
  ``Preprocess`` recipe, provenance.
- ``make_loader(split, ...)`` -> ``BatchLoader`` (in memory, batched on-device augmentation),
  ``TextLoader`` (windows of tokens) or ``StreamLoader`` (image folders); all offer
  ``next_batch()``, ``state_dict()``, ``load_state_dict()`` and one ordered pass with
  ``iter()`` for evaluation.
- ``resolve_data_dir`` picks the data directory; ``DatasetMissing`` says which files to place;
  ``DownloadFailed`` why ``--download`` could not fetch them.

>>> ds = load_dataset("digits")
>>> loader = BatchLoader(ds.train, batch_size=32, preprocess=ds.preprocess, train=True)
>>> x, y = loader.next_batch()
>>> tuple(x.shape), y.dtype
((32, 1, 8, 8), torch.int64)
"""

from grownet.data.augment import (
    Augmentation,
    apply_augmentation,
    draw_augmentation,
    normalize,
    random_crop,
    random_flip,
)
from grownet.data.datasets import (
    DATASETS,
    Dataset,
    DatasetInfo,
    held_out_size,
    load_dataset,
    make_loader,
)
from grownet.data.dirs import ENV_VAR, DatasetMissing, DownloadFailed, resolve_data_dir
from grownet.data.loader import BatchLoader, derive_seed
from grownet.data.preprocess import PREPROCESSINGS, Preprocess, channel_stats, pixel_mean, recipe
from grownet.data.splits import (
    FolderSplit,
    Split,
    held_out,
    stratified_indices,
    validation_size,
)
from grownet.data.stream import StreamLoader, folder_transform
from grownet.data.text import TextLoader, TextSplit, Vocabulary

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "PREPROCESSINGS",
    "Augmentation",
    "BatchLoader",
    "Dataset",
    "DatasetInfo",
    "DatasetMissing",
    "DownloadFailed",
    "FolderSplit",
    "Preprocess",
    "Split",
    "StreamLoader",
    "TextLoader",
    "TextSplit",
    "Vocabulary",
    "apply_augmentation",
    "channel_stats",
    "derive_seed",
    "draw_augmentation",
    "folder_transform",
    "held_out",
    "held_out_size",
    "load_dataset",
    "make_loader",
    "normalize",
    "pixel_mean",
    "random_crop",
    "random_flip",
    "recipe",
    "resolve_data_dir",
    "stratified_indices",
    "validation_size",
]
