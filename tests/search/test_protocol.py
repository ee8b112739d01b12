"""The validation protocol: no decision of a search reads the test split.

The proof: the same search on the same data, once with the test labels shuffled. Every
decision, sweep point, knee, interval, check and recommendation must be bit-identical; only
the test accuracies, read once per reported network, may change.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from grownet.search import runner
from grownet.search.spec import load_spec

SPEC = """
name = "{name}"
dataset = "npz:{path}"
[base]
model = "convnet"
options = {{ widths = [8, 16] }}
[train]
batch_size = 32
base_lr = 0.05
lr_policy = "cosine"
test_interval = 40
display_interval = 20
threads = 1
quiet = true
[growth]
insert_after = ["relu1_1", "relu2_1"]
stage_iters = 80
dropin_length = 40
max_stages = 1
[depth]
ratios = [0.5, 1e-3]
iters_per_ratio = 20
[width]
ratios = [0.75, 0.5, 0.25]
iters_per_ratio = 20
[verify]
iters = 40
tolerance = 0.2
backoff = 1
[final]
iters = 60
"""


def write_digits(path, *, shuffle_test: bool) -> None:
    digits = load_digits()
    x = digits.images.astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    y_test = y[1200:].copy()
    if shuffle_test:
        y_test = np.random.default_rng(0).permutation(y_test)
    np.savez(path, x=x[:1200], y=y[:1200], x_test=x[1200:], y_test=y_test)


def search(tmp, name, *, shuffle_test, folds=0):
    data = tmp / f"{name}.npz"
    write_digits(data, shuffle_test=shuffle_test)
    spec_file = tmp / f"{name}.toml"
    extra = f"[validate]\nfolds = {folds}\n" if folds else ""
    spec_file.write_text(SPEC.format(name=name, path=data) + extra)
    spec = load_spec(spec_file, runs_dir=str(tmp / "runs"))
    summary = runner.Search(spec, echo=lambda line: None, quiet=True).run()
    out = tmp / "runs" / name
    stages = [json.loads(line) for line in (out / "stages.jsonl").open()]
    sweeps = json.loads((out / "sweeps.json").read_text())["sweeps"]
    return summary, stages, sweeps, out


@pytest.fixture(scope="module", params=[0, 3], ids=["hold-out", "3-fold"])
def pair(tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("protocol")
    folds = request.param
    return (search(tmp, "plain", shuffle_test=False, folds=folds),
            search(tmp, "shuffled", shuffle_test=True, folds=folds))  # fmt: skip


def decisions(summary, stages, sweeps):
    """Everything a search decided, with run paths, times and test figures left out."""
    drop = {"run", "wall_time_s", "stage_time_s", "train_time_s"}

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in drop}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    rec = {k: v for k, v in summary["recommended"].items() if k not in ("test_accuracy",)}
    final = summary["final"]
    return clean({  # a cross-validated final run has no validation accuracy: None on both
        "stages": stages,
        "sweeps": sweeps,
        "decision": summary["growth_decision"],
        "recommended": rec,
        "best": summary["best"],
        "width_interval": summary["width_interval"],
        "depth_interval": summary["depth_interval"],
        "final": [(r["start"], r["val_accuracy"]) for r in final["runs"]],
        "final_chosen": final["chosen"]["start"],
    })  # fmt: skip


def test_shuffled_test_labels_change_no_decision(pair):
    (a, *rest_a), (b, *rest_b) = pair
    assert decisions(a, *rest_a[:2]) == decisions(b, *rest_b[:2])
    folds = a["protocol"]["folds"]
    # a hold-out of 300 of the 1,200 training samples; 3 folds validate every one of them
    assert a["protocol"]["decisions"] == "val"
    assert a["protocol"]["n_val"] == (1200 if folds else 300)


def test_shuffled_test_labels_change_the_test_figures(pair):
    (a, *_), (b, *_) = pair
    # digits' 597 test images under shuffled labels: about chance, far below the real ones
    assert a["final"]["chosen"]["test_accuracy"] > 0.5
    assert b["final"]["chosen"]["test_accuracy"] < 0.3
    assert a["recommended"]["test_accuracy"] != b["recommended"]["test_accuracy"]
    assert a["n_test"] == b["n_test"] == 597


def test_the_final_model_is_written_and_loads(pair):
    (summary, _, _, out), _ = pair
    model = out / "model"
    config = json.loads((model / "config.json").read_text())
    folds = summary["protocol"]["folds"]
    assert config["start"] == summary["final"]["chosen"]["start"]
    if folds:  # trained once on the whole training set, from scratch
        assert config["start"] == "scratch" and config["train"]["folds"] == 0
        assert config["val_accuracy"] is None
        assert sorted(p.name for p in (out / "stages" / "stage_0").iterdir()) == [
            "fold_0", "fold_1", "fold_2"]
    else:
        assert config["chosen_on"] == "val"
    # the data's description travels with the model (a table's encoding for new rows)
    data = json.loads((model / "dataset.json").read_text())
    assert data == json.loads((Path(config["run"]) / "dataset.json").read_text())
    state = torch.load(model / "weights.pt", weights_only=True)
    from grownet.graph import NetGraph
    from grownet.graph.executor import GraphNet

    net = GraphNet(NetGraph.from_json(model / "graph.json"))
    net.load_state_dict(state)
    assert config["params"] == sum(p.numel() for p in net.parameters())
    text = (out / "summary.txt").read_text()
    said = "every training sample, 3-fold cross-validation" if folds else "300 samples"
    assert f"decisions on the validation split ({said}" in text
    assert "test accuracy (read once" in text and "final model (60 iterations" in text
