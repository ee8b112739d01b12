"""The trainer on text: a GPT learns a small file through the `text:` scheme, judged on its
loss per token (bits shown beside nats), resumed exactly, and AdamW decays only matrices."""

import json
import math

import pytest
import torch

from grownet.cli import main
from grownet.train.config import ConfigError, TrainConfig
from grownet.train.network import make_optimizer
from grownet.train.trainer import Trainer

TEXT = "to be or not to be, that is the question. " * 60


def config(tmp_path, **overrides) -> TrainConfig:
    path = tmp_path / "play.txt"
    path.write_text(TEXT)
    settings = {
        "name": "lm", "runs_dir": str(tmp_path / "runs"), "model": "gpt",
        "model_options": {"depth": 1, "width": 32, "heads": 2},
        "dataset": f"text:{path}?context=16", "batch_size": 8, "max_iter": 60,
        "test_interval": 30, "display_interval": 10, "optimizer": "adamw", "base_lr": 3e-3,
        "beta2": 0.99, "weight_decay": 0.1, "quiet": True, "threads": 1,
        **overrides,
    }  # fmt: skip
    return TrainConfig.from_dict(settings)


def test_a_gpt_learns_a_small_text_and_is_judged_by_its_loss(tmp_path):
    result = Trainer(config(tmp_path)).run()
    records = [json.loads(line) for line in (tmp_path / "runs/lm/metrics.jsonl").open()]
    test = [r for r in records if r["kind"] == "test"]
    vocab = len(set(TEXT))
    assert result.status == "converged"
    assert result.final_test_loss < 0.5 * math.log(vocab)  # the language model's bar
    assert test[-1]["bits"] == pytest.approx(test[-1]["loss"] / math.log(2))
    assert test[-1]["loss"] < test[0]["loss"]


def test_a_stopped_language_model_resumes_to_the_same_weights(tmp_path):
    whole = Trainer(config(tmp_path, name="whole", max_iter=20, test_interval=10)).run()
    Trainer(config(tmp_path, name="cut", max_iter=10, test_interval=10)).run()
    resumed = Trainer(config(tmp_path, name="cut", max_iter=20, test_interval=10))
    result = resumed.run(extend=True)
    assert result.final_test_loss == whole.final_test_loss


def test_adamw_decays_matrices_and_tables_only():
    net = torch.nn.ModuleDict({"fc": torch.nn.Linear(3, 2), "ln": torch.nn.LayerNorm(3)})
    opt = make_optimizer(net, TrainConfig(optimizer="adamw", weight_decay=0.1, beta2=0.99))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] for p in g["params"]}
    assert decayed == {id(net["fc"].weight)}
    assert opt.param_groups[0]["betas"] == (0.9, 0.99)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"optimizer": "adam"}, r"optimizer must be one of sgd, adamw, got 'adam'"),
        ({"optimizer": "adamw", "beta2": 1.0}, r"adamw needs momentum \(beta1\) and beta2 in"),
        ({"optimizer": "adamw", "nesterov": True}, r"nesterov is an sgd option"),
    ],
)
def test_optimizer_mistakes_are_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**overrides)


def test_the_cli_reports_nats_and_bits(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text(TEXT)
    main(["train", "--model", "gpt", "-o", "depth=1", "-o", "width=16", "-o", "heads=2",
          "--dataset", "text:t.txt?context=8", "--max-iter", "4", "--test-interval", "4",
          "--batch-size", "4", "--optimizer", "adamw", "--base-lr", "1e-3", "--quiet"])
    out = capsys.readouterr().out
    assert "loss" in out and "nats" in out and "bits) per token" in out
