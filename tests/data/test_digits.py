import json

import torch

from grownet.data import load_dataset


def test_digits_shapes_and_split_sizes():
    ds = load_dataset("digits")
    assert ds.in_shape == (1, 8, 8) and ds.num_classes == 10
    assert (len(ds.train), len(ds.test), ds.val) == (1347, 450, None)
    assert ds.train.x.dtype == torch.uint8 and int(ds.train.x.max()) == 16
    assert ds.preprocess.scale == 1 / 16  # [0, 1] after scaling


def test_digits_test_split_is_fixed_whatever_the_seed():
    a, b = load_dataset("digits", seed=0), load_dataset("digits", seed=7)
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.test.y, b.test.y)
    assert torch.equal(a.train.x, b.train.x)


def test_digits_split_is_stratified():
    ds = load_dataset("digits")
    train = torch.bincount(ds.train.y, minlength=10)
    test = torch.bincount(ds.test.y, minlength=10)
    total = train + test
    # every class has a quarter of its images in the test split, to within one image
    assert ((test - total * 0.25).abs() <= 1).all()


def test_digits_validation_and_subset_are_disjoint_and_seeded():
    ds = load_dataset("digits", val_size=200, train_size=500, seed=3)
    assert (len(ds.train), len(ds.val)) == (500, 200)
    again = load_dataset("digits", val_size=200, train_size=500, seed=3)
    other = load_dataset("digits", val_size=200, train_size=500, seed=4)
    assert torch.equal(ds.val.x, again.val.x) and torch.equal(ds.train.x, again.train.x)
    assert not torch.equal(ds.val.x, other.val.x)
    assert ds.source["sizes"] == {"train": 500, "val": 200, "test": 450}
    assert json.loads(json.dumps(ds.source)) == ds.source  # provenance is JSON-ready
