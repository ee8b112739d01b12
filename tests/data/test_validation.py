"""The validation splits a search decides on: the hold-out rule and k folds."""

import pytest
import torch

from grownet.data import held_out_size, load_dataset, validation_size
from grownet.errors import BadValueError


@pytest.mark.parametrize(
    ("n", "size"),
    [(60_000, 6_000), (50_000, 5_000), (4_000, 1_000), (1_347, 336), (133, 33), (2, 1)],
)
def test_hold_out_rule(n, size):
    assert validation_size(n) == size


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n": 1}, "n must be an int >= 2"), ({"n": 10, "fraction": 1.0}, "fraction"),
     ({"n": 10, "min_size": 0}, "min_size"), ({"n": 10, "max_share": 0.0}, "max_share")],
)  # fmt: skip
def test_hold_out_rule_checks_its_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        validation_size(**kwargs)


def test_the_shipped_tables_and_digits_hold_out_by_the_rule():
    assert (held_out_size("digits"), held_out_size("wine")) == (336, 33)


def test_folds_partition_the_training_set_stratified():
    whole = load_dataset("digits")
    folds = [load_dataset("digits", folds=5, fold=i, seed=3) for i in range(5)]
    assert all(len(f.train) + len(f.val) == len(whole.train) for f in folds)
    held = sorted(map(tuple, torch.cat([f.val.x.flatten(1) for f in folds]).tolist()))
    # every training image is validated once: the folds' validation sets are the training set
    assert held == sorted(map(tuple, whole.train.x.flatten(1).tolist()))
    counts = torch.bincount(folds[0].val.y, minlength=10).float()
    assert counts.max() - counts.min() <= 2  # each class in proportion
    assert folds[0].source["folds"] == 5 and folds[0].source["sizes"]["val"] == len(folds[0].val)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"folds": 5, "fold": 0, "val_size": 100}, "excludes val_size"),
     ({"folds": 500, "fold": 0}, "needs at least 500 samples of every class")],
)  # fmt: skip
def test_fold_mistakes_are_named(kwargs, message):
    with pytest.raises((BadValueError, ValueError), match=message):
        load_dataset("digits", **kwargs)
