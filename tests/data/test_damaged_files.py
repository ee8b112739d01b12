"""Truncated, corrupt or foreign dataset files, and failed downloads: one line naming the fix."""

import gzip
import pickle
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision

from grownet.data import DatasetMissing, DownloadFailed, load_dataset
from grownet.errors import DataFileError, UserError

IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"


@pytest.fixture
def fake_mnist(tmp_path, idx_writer):
    """A tiny MNIST folder; ``gz`` picks the compressed or the uncompressed layout."""

    def make(gz: bool):
        rng = np.random.default_rng(0)
        raw = tmp_path / "MNIST" / "raw"
        for prefix, n in (("train", 20), ("t10k", 10)):
            images = rng.integers(0, 256, (n, 28, 28))
            idx_writer(raw / f"{prefix}-images-idx3-ubyte", images, gz=gz)
            idx_writer(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, gz=gz)
        return raw

    return make


def _cut(keep):
    return lambda path: path.write_bytes(path.read_bytes()[:keep])


def _write(content):
    return lambda path: path.write_bytes(content)


def _regzip(damage):
    """Recompress the file's content after ``damage``: valid gzip, wrong IDX."""
    return lambda path: path.write_bytes(gzip.compress(damage(gzip.decompress(path.read_bytes()))))


def _five_labels(data):
    return data[:4] + (5).to_bytes(4, "big") + data[8:13]


# (compressed layout, file, damage, expected message after "<file>: ")
MNIST_CASES = [
    (False, IMAGES, _cut(1000), "has 1000 bytes, its header implies 15696: the file is truncated"),
    (False, LABELS, _write(b"PK\x03\x04junk"), r"is not an IDX file \(magic number 504b0304\)"),
    (False, LABELS, _write(b""), r"is not an IDX file \(magic number missing\)"),
    (True, IMAGES, _regzip(lambda d: d[:-5]), "has 15691 bytes once decompressed, its header"),
    (True, IMAGES, _cut(100), "is not a readable gzip file .*end-of-stream"),
    (True, LABELS, _write(b"plain text"), "is not a readable gzip file .*Not a gzipped file"),
    (True, LABELS, _regzip(_five_labels), r"holds \(5,\) labels for 20 images"),
]


@pytest.mark.parametrize(("gz", "name", "damage", "problem"), MNIST_CASES)
def test_damaged_mnist_file_is_named_not_missing(fake_mnist, gz, name, damage, problem):
    raw = fake_mnist(gz)
    path = raw / (name + (".gz" if gz else ""))
    damage(path)
    with pytest.raises(DataFileError, match=f"^{path}: {problem}") as info:
        load_dataset("mnist", data_dir=raw.parent.parent)
    assert "\n" not in str(info.value) and "--download" in str(info.value)
    assert not isinstance(info.value, DatasetMissing)


def _pickled(obj):
    return pickle.dumps(obj)


GOOD = {"data": np.zeros((20, 3072), np.uint8), "labels": [0] * 20}
NOT_A_BATCH = "is not a CIFAR batch: 'data' must be uint8 N x 3072, got"

# (file, new content, expected message after "<file>: ")
CIFAR_CASES = [
    ("data_batch_1", b"", r"is not a readable CIFAR pickle \(EOFError"),
    ("data_batch_1", b"this is text, not a pickle", "is not a readable CIFAR pickle"),
    ("data_batch_1", _pickled(GOOD)[:500], "is not a readable CIFAR pickle .*truncated"),
    ("data_batch_1", _pickled([1, 2]), r"holds a list, not a CIFAR dict with \['data', 'labels'\]"),
    ("data_batch_1", _pickled({"data": GOOD["data"]}), "lacks the key 'labels' of a CIFAR file"),
    ("test_batch", _pickled({**GOOD, "data": GOOD["data"] + 0.5}), f"{NOT_A_BATCH} float64"),
    ("test_batch", _pickled({**GOOD, "data": [1, 2]}), f"{NOT_A_BATCH} list"),
    ("test_batch", _pickled({**GOOD, "labels": [0]}), "has 20 images but 1 labels"),
    ("test_batch", _pickled({**GOOD, "labels": ["cat"] * 20}), "its 'labels' are not integers"),
    ("batches.meta", _pickled({"names": []}), "lacks the key 'label_names'"),
    ("batches.meta", _pickled({"label_names": "cat"}), "its 'label_names' is not a list of names"),
]


@pytest.mark.parametrize(("name", "content", "problem"), CIFAR_CASES)
def test_damaged_cifar_file_is_one_line(fake_cifar10, name, content, problem):
    path = fake_cifar10 / "cifar-10-batches-py" / name
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=f"^{path}: {problem}") as info:
        load_dataset("cifar10", data_dir=fake_cifar10)
    assert "\n" not in str(info.value)


def _half(path):
    _cut(path.stat().st_size // 2)(path)


def _no_y(path):
    import scipy.io

    scipy.io.savemat(path, {"X": np.zeros(3)})


SVHN_CASES = [
    (_write(b""), "is not a readable .mat file"),
    (_write(b"not a mat file" * 20), "is not a readable .mat file"),
    (_half, "is truncated or corrupt"),
    (_no_y, "is not an SVHN .mat file"),
]


@pytest.mark.parametrize(("damage", "problem"), SVHN_CASES)
def test_damaged_svhn_file_is_one_line(fake_svhn, damage, problem):
    path = fake_svhn / "SVHN" / "test_32x32.mat"
    damage(path)
    with pytest.raises(DataFileError, match=f"^{path}: {problem}"):
        load_dataset("svhn", data_dir=fake_svhn)


# (dataset, torchvision class whose download fails, its error, URL and folder in the message)
DOWNLOAD_CASES = [
    ("mnist", "MNIST", URLError("[Errno -3] Temporary failure in name resolution"),
     "https://ossci-datasets.s3.amazonaws.com/mnist/", "MNIST/raw"),
    ("cifar10", "CIFAR10", URLError("timed out"),
     "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-batches-py"),
    ("svhn", "SVHN", RuntimeError("File not found or corrupted."),
     "http://ufldl.stanford.edu/housenumbers/", "SVHN"),
    ("fashion_mnist", "FashionMNIST", OSError("[Errno 101] Network is unreachable"),
     "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", "FashionMNIST/raw"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "cls", "error", "url", "folder"), DOWNLOAD_CASES)
def test_failed_download_is_one_user_error(tmp_path, monkeypatch, name, cls, error, url, folder):
    def offline(self):
        raise error

    monkeypatch.setattr(getattr(torchvision.datasets, cls), "download", offline)
    with pytest.raises(DownloadFailed) as info:
        load_dataset(name, data_dir=tmp_path, download=True)
    reason = str(getattr(error, "reason", error))
    assert isinstance(info.value, UserError)
    assert str(info.value) == (
        f"could not download {'MNIST' if cls == 'MNIST' else info.value.dataset} from {url}: "
        f"{reason}; place the files in {tmp_path / folder} yourself (see README)"
    )
    assert pickle.loads(pickle.dumps(info.value)).args == info.value.args


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n", "is not a JPEG, PNG"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x08", "is a damaged image"),
    ],
)
def test_image_folder_file_is_decoded_only_as_an_image(tmp_path, content, problem):
    # PIL picks the decoder from the bytes: an EPS named .jpg would reach Ghostscript.
    from grownet.data.splits import FolderSplit
    from grownet.data.stream import _FolderImages

    path = tmp_path / "x.jpg"
    path.write_bytes(content)
    images = _FolderImages(FolderSplit((str(path),), torch.tensor([0]), ("a",)), lambda im: im)
    with pytest.raises(DataFileError, match=f"^{path}: {problem}"):
        images[(0, 0)]
