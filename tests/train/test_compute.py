"""Training compute: iterations x FLOPs per iteration, recorded by every run."""

import json

import pytest

from grownet.train.compute import format_flops, forward_flops, run_flops, step_flops
from grownet.train.config import TrainConfig
from grownet.train.trainer import Trainer
from grownet.zoo import build


def test_a_run_records_its_training_flops_and_older_runs_are_counted(tmp_path):
    config = TrainConfig(model="convnet", dataset="digits", max_iter=6, test_interval=3,
                         batch_size=16, quiet=True, runs_dir=str(tmp_path), name="r")  # fmt: skip
    trainer = Trainer(config)
    result = trainer.run()
    expected = 6 * 3 * 2 * trainer.graph.macs() * 16
    assert result.train_flops == expected == run_flops(tmp_path / "r")
    # a result written before runs recorded it: counted from graph.json and config.json
    saved = json.loads((tmp_path / "r" / "result.json").read_text())
    del saved["train_flops"]
    (tmp_path / "r" / "result.json").write_text(json.dumps(saved))
    assert run_flops(tmp_path / "r") == expected
    assert run_flops(tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda g: step_flops(g, batch_size=0), "batch_size must be >= 1"),
        (lambda g: forward_flops(g, -1), "samples must be >= 0"),
    ],
)
def test_compute_refuses_impossible_counts(call, message):
    with pytest.raises(ValueError, match=message):
        call(build("lenet"))


@pytest.mark.parametrize(
    ("flops", "text"), [(0, "0 FLOP"), (1_234, "1.23 kFLOP"), (6.69e12, "6.69 TFLOP")]
)
def test_flops_are_shown_with_a_prefix(flops, text):
    assert format_flops(flops) == text
