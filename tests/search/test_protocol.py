"""The validation protocol: no decision of a search reads the test split.

The proof: the same search on the same data, once with the test labels shuffled. Every
decision, sweep point, knee, interval, check and recommendation must be bit-identical; only
the test accuracies, read once per reported network, may change.
"""

import json

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


def search(tmp, name, *, shuffle_test):
    data = tmp / f"{name}.npz"
    write_digits(data, shuffle_test=shuffle_test)
    spec_file = tmp / f"{name}.toml"
    spec_file.write_text(SPEC.format(name=name, path=data))
    spec = load_spec(spec_file, runs_dir=str(tmp / "runs"))
    summary = runner.Search(spec, echo=lambda line: None, quiet=True).run()
    out = tmp / "runs" / name
    stages = [json.loads(line) for line in (out / "stages.jsonl").open()]
    sweeps = json.loads((out / "sweeps.json").read_text())["sweeps"]
    return summary, stages, sweeps, out


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("protocol")
    return search(tmp, "plain", shuffle_test=False), search(tmp, "shuffled", shuffle_test=True)


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
    return clean({
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
    assert a["protocol"]["decisions"] == "val" and a["protocol"]["n_val"] == 300


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
    assert config["chosen_on"] == "val" and config["start"] == summary["final"]["chosen"]["start"]
    state = torch.load(model / "weights.pt", weights_only=True)
    from grownet.graph import NetGraph
    from grownet.graph.executor import GraphNet

    net = GraphNet(NetGraph.from_json(model / "graph.json"))
    net.load_state_dict(state)
    assert config["params"] == sum(p.numel() for p in net.parameters())
    text = (out / "summary.txt").read_text()
    assert "decisions on the validation split (300 samples" in text
    assert "test accuracy (read once" in text and "final model (60 iterations" in text
