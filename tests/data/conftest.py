"""Fixtures for grownet.data: the shared real MNIST, tiny fake datasets, and no network.

Only MNIST is available for real (../shared/data/MNIST/raw beside the repository, or
$GROWNET_DATA). The other datasets are exercised through small files written in torchvision's
on-disk formats under tmp_path.
"""

import gzip
import os
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = next(p for p in Path(__file__).resolve().parents if (p / "tests").is_dir())
MNIST_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


def _shared_data_dir() -> Path:
    from_env = os.environ.get("GROWNET_DATA", "").strip()
    return Path(from_env) if from_env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The directory holding the real MNIST (skips the test when it is absent)."""
    directory = _shared_data_dir()
    raw = directory / "MNIST" / "raw"
    if not all((raw / f).is_file() or (raw / f"{f}.gz").is_file() for f in MNIST_FILES):
        pytest.skip(f"real MNIST not found in {raw} (set GROWNET_DATA)")
    return directory


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Fail any test that tries to reach the network: tests must never download.

    Local (AF_UNIX) sockets stay allowed: DataLoader workers talk through them.
    """
    connect = socket.socket.connect

    def guarded_connect(sock, address):
        if sock.family != socket.AF_UNIX:
            raise AssertionError(f"network access attempted: {address!r}")
        return connect(sock, address)

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """Keep the user's data directory settings out of every test."""
    monkeypatch.delenv("GROWNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


# ----------------------------------------------------------------------------- fake files


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> None:
    """Write ``array`` (uint8) as an IDX file, the MNIST format."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.fixture
def idx_writer():
    """``write_idx`` as a fixture (test modules cannot import conftest)."""
    return write_idx


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
