"""A study's objective never reads the test split: the same study with the test labels
shuffled gives every trial the same parameters and objective values, bit for bit; only each
trial's ``test_accuracy``, read once after it, changes."""

import numpy as np
import optuna
import pytest
from sklearn.datasets import load_digits

from grownet.cli import main
from grownet.study.storage import open_storage

SPEC = """
name = "{name}"
dataset = "npz:{path}"
[study]
objectives = ["accuracy", "params"]
sampler = "random"
pruner = "none"
[base]
model = "convnet"
[train]
batch_size = 32
base_lr = 0.05
max_iter = 30
test_interval = 10
display_interval = 10
device = "cpu"
threads = 1
[space.model.widths]
type = "categorical"
choices = [4, 8, 16]
length = 2
"""


def study(tmp, name, *, shuffle_test):
    digits = load_digits()
    x, y = digits.images.astype(np.float32)[:, None], digits.target.astype(np.int64)
    y_test = y[1200:].copy()
    if shuffle_test:
        y_test = np.random.default_rng(0).permutation(y_test)
    data = tmp / f"{name}.npz"
    np.savez(data, x=x[:1200], y=y[:1200], x_test=x[1200:], y_test=y_test)
    spec = tmp / f"{name}.toml"
    spec.write_text(SPEC.format(name=name, path=data))
    argv = ["study", str(spec), "--runs-dir", str(tmp), "--quiet", "--trials", "3"]
    assert main(argv) == 0
    storage = open_storage(f"sqlite:///{tmp / name / 'study.db'}", heartbeat_s=1)
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study-protocol")
    return study(tmp, "plain", shuffle_test=False), study(tmp, "shuffled", shuffle_test=True)


def test_shuffled_test_labels_change_no_objective(pair):
    plain, shuffled = pair
    assert [(t.params, t.values) for t in plain] == [(t.params, t.values) for t in shuffled]
    # the objective reads the validation hold-out (300 of the 1,200 training images)
    assert all(t.user_attrs["split"] == "val" for t in plain)


def test_shuffled_test_labels_change_the_test_accuracy(pair):
    plain, shuffled = pair
    real = [t.user_attrs["test_accuracy"] for t in plain]
    scrambled = [t.user_attrs["test_accuracy"] for t in shuffled]
    assert min(real) > 0.5 and max(scrambled) < 0.3
