"""CIFAR-10/100 and SVHN code paths, on tiny fake files in torchvision's on-disk formats."""

import json
import pickle

import numpy as np
import pytest
import torch
import torchvision

from grownet.data import BatchLoader, DatasetMissing, load_dataset


def _eval_all(ds, split):
    loader = BatchLoader(split, batch_size=64, preprocess=ds.preprocess, train=False)
    return torch.cat([x for x, _ in loader])


def test_torchvision_refuses_fake_cifar_so_grownet_reads_the_pickles(fake_cifar10):
    # torchvision checks each file's md5 against the official release: why grownet parses the
    # (identical) pickle format itself.
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        torchvision.datasets.CIFAR10(str(fake_cifar10), train=True, download=False)
    ds = load_dataset("cifar10", data_dir=fake_cifar10)
    with open(fake_cifar10 / "cifar-10-batches-py" / "data_batch_2", "rb") as f:
        batch = pickle.load(f)
    assert (len(ds.train), len(ds.test), ds.in_shape, ds.num_classes) == (100, 10, (3, 32, 32), 10)
    assert np.array_equal(ds.train.x[20:40].numpy().reshape(20, -1), batch["data"])
    assert ds.train.y[20:40].tolist() == batch["labels"] and ds.classes[3] == "c3"


def test_cifar_paper_recipe_subtracts_the_training_mean_image(fake_cifar10):
    ds = load_dataset("cifar10", data_dir=fake_cifar10)
    assert json.dumps(ds.source)  # the per-pixel mean is summarised, not dumped
    pre = ds.preprocess
    assert (pre.pad, pre.flip, pre.std, pre.scale) == (4, True, None, 1 / 255)
    expected = ds.train.x.double().mean(0) / 255
    assert pre.mean.shape == (3, 32, 32) and torch.allclose(pre.mean, expected, atol=1e-12)
    x = _eval_all(ds, ds.train)
    assert x.mean(0).abs().max() < 1e-5  # per-pixel mean removed
    assert torch.allclose(x, ds.train.x.float() / 255 - expected.float(), atol=1e-6)


def test_cifar_held_out_validation_is_a_seeded_stratified_partition(fake_cifar10):
    ds = load_dataset("cifar10", data_dir=fake_cifar10, val_size=10, seed=1)
    full = load_dataset("cifar10", data_dir=fake_cifar10)
    assert (len(ds.train), len(ds.val)) == (90, 10)
    assert sorted(ds.val.y.tolist()) == list(range(10))  # one per class, like 45k/5k's 500
    rows = {bytes(r) for r in full.train.x.flatten(1).numpy()}
    train_rows = {bytes(r) for r in ds.train.x.flatten(1).numpy()}
    val_rows = {bytes(r) for r in ds.val.x.flatten(1).numpy()}
    assert not train_rows & val_rows and train_rows | val_rows == rows
    # the mean image comes from the 90 training images only
    assert torch.allclose(ds.preprocess.mean, ds.train.x.double().mean(0) / 255)
    other = load_dataset("cifar10", data_dir=fake_cifar10, val_size=10, seed=2)
    assert not torch.equal(other.val.x, ds.val.x)


@pytest.mark.parametrize(
    ("preprocessing", "scale", "mean_shape", "has_std", "pad", "flip"),
    [
        ("paper", 1 / 255, (3, 32, 32), False, 4, True),
        ("caffe", 1.0, (3, 32, 32), False, 0, False),
        ("standard", 1 / 255, (3, 1, 1), True, 4, True),
        ("none", 1 / 255, None, False, 0, False),
    ],
)
def test_cifar_recipes(fake_cifar10, preprocessing, scale, mean_shape, has_std, pad, flip):
    pre = load_dataset("cifar10", data_dir=fake_cifar10, preprocessing=preprocessing).preprocess
    assert (pre.scale, pre.pad, pre.flip, pre.std is not None) == (scale, pad, flip, has_std)
    assert (None if pre.mean is None else tuple(pre.mean.shape)) == mean_shape


def test_cifar100_uses_fine_labels(fake_cifar100):
    ds = load_dataset("cifar100", data_dir=fake_cifar100)
    assert (len(ds.train), len(ds.test), ds.num_classes) == (200, 100, 100)
    assert ds.train.y.max().item() == 99 and ds.classes[99] == "f99"


def test_cifar_missing_file_names_it(fake_cifar10):
    (fake_cifar10 / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetMissing, match=r"CIFAR-10 not found in .*cifar-10-batches-py"):
        load_dataset("cifar10", data_dir=fake_cifar10)


def test_svhn_layout_labels_and_channel_normalisation(fake_svhn):
    import scipy.io

    ds = load_dataset("svhn", data_dir=fake_svhn)
    mat = scipy.io.loadmat(fake_svhn / "SVHN" / "train_32x32.mat")
    assert (len(ds.train), len(ds.test), ds.in_shape) == (30, 20, (3, 32, 32))
    # torchvision's layout: x[n, c, h, w] == X[h, w, c, n]; the label 10 means digit 0
    assert np.array_equal(ds.train.x.numpy(), mat["X"].transpose(3, 2, 0, 1))
    assert ds.train.y.tolist() == [i % 10 for i in range(30)]
    pre = ds.preprocess
    assert pre.mean.shape == (3, 1, 1) and pre.std.shape == (3, 1, 1) and not pre.augments
    x = _eval_all(ds, ds.train).double()
    assert torch.allclose(x.mean((0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(
        x.std((0, 2, 3), correction=0), torch.ones(3, dtype=torch.float64), atol=1e-5
    )


def test_svhn_extra_adds_the_extra_images(fake_svhn):
    ds = load_dataset("svhn_extra", data_dir=fake_svhn)
    assert (len(ds.train), len(ds.test)) == (40, 20)
    with pytest.raises(ValueError, match="preprocessing must be one of"):
        load_dataset("svhn", data_dir=fake_svhn, preprocessing="caffe")
