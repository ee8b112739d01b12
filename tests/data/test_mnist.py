"""MNIST from the real files in ../shared/data (or $GROWNET_DATA); Fashion-MNIST from fakes."""

import numpy as np
import pytest
import torch
import torchvision

from grownet.data import BatchLoader, DatasetMissing, load_dataset

FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte"]  # fmt: skip


@pytest.fixture(scope="module")
def mnist(shared_data_dir):
    return load_dataset("mnist", data_dir=shared_data_dir)


def test_mnist_sizes_and_shapes(mnist):
    assert (len(mnist.train), len(mnist.test)) == (60_000, 10_000)
    assert mnist.in_shape == (1, 28, 28) and mnist.num_classes == 10
    assert mnist.train.x.dtype == torch.uint8 and mnist.train.y.dtype == torch.int64
    assert torch.equal(torch.bincount(mnist.test.y), torch.bincount(mnist.test.y, minlength=10))
    assert mnist.source["files"]["train-images-idx3-ubyte"] == 47_040_016


def test_mnist_paper_scaling_is_caffe_x_over_256(mnist):
    loader = BatchLoader(mnist.test, batch_size=10_000, preprocess=mnist.preprocess, train=False)
    ((x, _),) = list(loader)
    assert x.max().item() == 255 / 256 and x.min().item() == 0.0
    assert torch.equal(x, mnist.test.x.float() / 256)
    assert not mnist.preprocess.augments and mnist.preprocess.mean is None


def test_mnist_train_subset_is_stratified(shared_data_dir, mnist):
    ds = load_dataset("mnist", data_dir=shared_data_dir, train_size=1000, seed=5)
    assert len(ds.train) == 1000 and len(ds.test) == 10_000
    share = torch.bincount(mnist.train.y, minlength=10).double() / 60_000
    assert ((torch.bincount(ds.train.y, minlength=10) - 1000 * share).abs() < 1).all()
    with pytest.raises(ValueError, match="train_size must be <= 59000"):
        load_dataset("mnist", data_dir=shared_data_dir, train_size=59_001, val_size=1000)


def test_mnist_gzip_only_folder_reads_the_same(shared_data_dir, mnist, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:
        (raw / f"{name}.gz").symlink_to(shared_data_dir / "MNIST" / "raw" / f"{name}.gz")
    ds = load_dataset("mnist", data_dir=tmp_path)
    assert ds.source["reader"] == "grownet IDX (.gz)"
    assert torch.equal(ds.test.x, mnist.test.x) and torch.equal(ds.train.y, mnist.train.y)


def test_missing_mnist_is_one_clear_line_and_never_downloads(tmp_path, monkeypatch):
    def no_download(self):
        raise AssertionError("download attempted")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", no_download)
    with pytest.raises(DatasetMissing) as info:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "MNIST" / "raw") in message
    assert all(f"{name}(.gz)" in message for name in FILES)
    assert "--download" in message


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_fake_files(tmp_path, gz, idx_writer):
    rng = np.random.default_rng(0)
    raw = tmp_path / "FashionMNIST" / "raw"
    for prefix, n in (("train", 30), ("t10k", 10)):
        idx_writer(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), gz=gz)
        idx_writer(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, gz=gz)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert (len(ds.train), len(ds.test), ds.in_shape) == (30, 10, (1, 28, 28))
    assert ds.classes[0] == "T-shirt/top" and ds.preprocess.scale == 1 / 256
    assert ds.test.y.tolist() == list(range(10))
