"""Fixtures every test folder shares: tiny datasets written in their real on-disk formats.

Only MNIST is available for real; CIFAR-10/100 (python pickles), SVHN (.mat) and ImageNet
(an image folder) are exercised through small files written here under tmp_path.
"""

import pickle
from pathlib import Path

import numpy as np
import pytest


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _images(rng: np.random.Generator, n: int, classes: int) -> tuple[np.ndarray, list[int]]:
    data = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
    labels = [i % classes for i in range(n)]  # balanced, so stratification is checkable
    return data, labels


@pytest.fixture
def fake_cifar10(tmp_path):
    """A CIFAR-10 folder with 5 train batches of 20 and a test batch of 10 random images."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    folder = root / "cifar-10-batches-py"
    for i in range(1, 6):
        data, labels = _images(rng, 20, 10)
        _pickle(folder / f"data_batch_{i}", {"data": data, "labels": labels})
    data, labels = _images(rng, 10, 10)
    _pickle(folder / "test_batch", {"data": data, "labels": labels})
    _pickle(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    return root


@pytest.fixture
def fake_cifar100(tmp_path):
    """A CIFAR-100 folder with 200 train and 100 test images (fine and coarse labels)."""
    rng = np.random.default_rng(1)
    root = tmp_path / "data"
    folder = root / "cifar-100-python"
    for name, n in (("train", 200), ("test", 100)):
        data, labels = _images(rng, n, 100)
        _pickle(folder / name, {"data": data, "fine_labels": labels, "coarse_labels": labels})
    _pickle(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)]})
    return root


@pytest.fixture
def fake_svhn(tmp_path):
    """An SVHN folder: train (30), test (20), extra (10) .mat files; digit 0 labelled 10."""
    import scipy.io

    rng = np.random.default_rng(2)
    root = tmp_path / "data"
    (root / "SVHN").mkdir(parents=True)
    for name, n in (("train", 30), ("test", 20), ("extra", 10)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = np.array([[i % 10 if i % 10 else 10] for i in range(n)], dtype=np.uint8)
        scipy.io.savemat(root / "SVHN" / f"{name}_32x32.mat", {"X": x, "y": y})
    return root


@pytest.fixture
def fake_imagenet(tmp_path):
    """An ImageFolder tree imagenet/{train,val}/{cat,dog}/ of small PNGs of varied sizes."""
    from PIL import Image

    rng = np.random.default_rng(3)
    root = tmp_path / "data"
    for sub, per_class in (("train", 6), ("val", 2)):
        for c in ("cat", "dog"):
            folder = root / "imagenet" / sub / c
            folder.mkdir(parents=True)
            for i in range(per_class):
                h, w = int(rng.integers(24, 40)), int(rng.integers(24, 40))
                pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.fixture
def fake_paper_data(fake_cifar10, fake_cifar100, fake_svhn, tmp_path):
    """Every dataset of the papers' recipes in one data directory, ImageNet as JPEG files
    (``n<wnid>/*.JPEG``, as the ILSVRC tree), each big enough for a few batches of 4."""
    from PIL import Image

    rng = np.random.default_rng(4)
    root = tmp_path / "data"
    for sub, per_class in (("train", 4), ("val", 2)):
        for wnid in ("n01440764", "n01443537"):
            folder = root / "imagenet" / sub / wnid
            folder.mkdir(parents=True)
            for i in range(per_class):
                h, w = int(rng.integers(24, 48)), int(rng.integers(24, 48))
                pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{wnid}_{i}.JPEG", format="JPEG")
    return root
