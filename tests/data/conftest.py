"""Fixtures for grownet.data: the shared real MNIST and Tiny Shakespeare, and no network (the
tiny fake datasets are in tests/conftest.py).

Only MNIST and Tiny Shakespeare are available for real (../shared/data/MNIST/raw and
../shared/data/tinyshakespeare beside the repository, or $GROWNET_DATA). The other datasets are
exercised through small files written in torchvision's on-disk formats under tmp_path.
"""

import gzip
import os
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


@pytest.fixture(scope="session")
def shakespeare_dir() -> Path:
    """The data directory holding the real Tiny Shakespeare (skips the test when it is absent)."""
    directory = _shared_data_dir()
    if not (directory / "tinyshakespeare" / "input.txt").is_file():
        pytest.skip(f"Tiny Shakespeare not found in {directory / 'tinyshakespeare'}")
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
