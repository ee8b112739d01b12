"""The trainer on the real MNIST (../shared/data), kept to a few dozen iterations."""

import json
import os
from pathlib import Path

import pytest
import torch

from grownet.cli import main
from grownet.train import checkpoint
from grownet.train.config import ConfigError, TrainConfig
from grownet.train.trainer import Trainer
from grownet.zoo import build

DATA = Path(os.environ.get("GROWNET_DATA", Path(__file__).parents[3] / "shared" / "data"))
pytestmark = pytest.mark.skipif(
    not (DATA / "MNIST" / "raw").is_dir(), reason=f"real MNIST not found under {DATA}"
)


def mnist_config(tmp_path: Path, **overrides) -> TrainConfig:
    settings = {
        "name": "run",
        "runs_dir": str(tmp_path),
        "model": "lenet2n",
        "model_options": {"n": 2, "dropin_length": 20},
        "dataset": "mnist",
        "data_dir": str(DATA),
        "train_size": 2000,
        "val_size": 300,
        "max_iter": 40,
        "test_interval": 20,
        "display_interval": 10,
        "quiet": True,
        "threads": 2,
        **overrides,
    }
    return TrainConfig.from_dict(settings)


def records(run_dir: str, kind: str) -> list[dict]:
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def test_run_writes_the_evidence(tmp_path):
    result = Trainer(mnist_config(tmp_path, max_iter=60)).run()
    run = Path(result.run_dir)
    for name in ("config.json", "env.json", "graph.json", "dataset.json", "result.json"):
        assert (run / name).exists(), name
    train, test = records(result.run_dir, "train"), records(result.run_dir, "test")
    assert [r["iteration"] for r in train] == [10, 20, 30, 40, 50, 60]
    assert [r["iteration"] for r in test] == [20, 40, 60]
    assert train[0]["dropin_q"]["dropin1_2"] == pytest.approx(1 - 9 / 20)
    assert train[-1]["dropin_q"]["dropin1_2"] == 0.0
    assert {"loss", "accuracy", "lr", "images_per_s", "wall_time_s"} <= set(train[0])
    weight_layers = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "fc3", "fc4"]
    assert all(list(r["signal"]) == weight_layers for r in test)  # graph order
    assert all(v > 0 for r in test for v in r["signal"].values())
    assert result.status == "converged" and result.final_test_accuracy > 0.6
    env = json.loads((run / "env.json").read_text())
    assert env["device"] == "cpu" and env["torch"] == torch.__version__


def test_an_extended_run_gives_the_same_metrics(tmp_path):
    full = Trainer(mnist_config(tmp_path / "a", max_iter=40)).run()
    Trainer(mnist_config(tmp_path / "b", max_iter=20)).run()
    resumed = Trainer(mnist_config(tmp_path / "b", max_iter=40)).run(extend=True)
    assert resumed.iterations == 40
    config = json.loads((Path(resumed.run_dir) / "config.json").read_text())
    assert config["max_iter"] == 40 and config["extensions"] == [20]

    def numbers(run_dir: str) -> list[tuple]:
        return [
            (r["kind"], r["iteration"], r["loss"], r["accuracy"])
            for r in map(json.loads, (Path(run_dir) / "metrics.jsonl").read_text().splitlines())
        ]

    assert numbers(resumed.run_dir) == numbers(full.run_dir)


def test_checkpoint_loads_weights_only(tmp_path):
    result = Trainer(mnist_config(tmp_path, max_iter=10, test_interval=10)).run()
    state = checkpoint.load(Path(result.run_dir) / "checkpoint.pt")
    assert state["iteration"] == 10 and state["config"]["max_iter"] == 10
    torch.load(Path(result.run_dir) / "checkpoint.pt", weights_only=True)


def test_resume_refuses_a_different_config(tmp_path):
    Trainer(mnist_config(tmp_path, max_iter=10, test_interval=10)).run()
    with pytest.raises(ConfigError, match=r"other settings that change results \(base_lr"):
        Trainer(mnist_config(tmp_path, max_iter=10, test_interval=10, base_lr=0.5)).run()


def test_resume_refuses_another_given_network(tmp_path):
    config = mnist_config(tmp_path, max_iter=10, test_interval=10)
    Trainer(config).run()
    other = build("lenet2n", n=1, dropin_length=20)
    with pytest.raises(ConfigError, match="holds a run of another network"):
        Trainer(config, graph=other).run()


def test_resume_accepts_the_same_files_found_elsewhere_and_keeps_the_clock(tmp_path):
    first = Trainer(mnist_config(tmp_path, max_iter=10, test_interval=10)).run()
    (tmp_path / "data").symlink_to(DATA)
    moved = mnist_config(tmp_path, max_iter=20, test_interval=10, data_dir=str(tmp_path / "data"))
    second = Trainer(moved).run(extend=True)
    assert second.iterations == 20
    assert second.wall_time_s > first.wall_time_s  # the first 10 iterations' time is counted


@pytest.mark.parametrize(
    ("overrides", "status", "reason"),
    [
        ({"base_lr": 1e4, "lr_policy": "fixed"}, "diverged", "loss became nan"),
        (
            {"base_lr": 1e-9, "give_up_at_chance_after": 20, "model_options": {"n": 1}},
            "did not converge",
            "still at chance at 20",
        ),
    ],
)
def test_failure_is_a_result_not_a_crash(tmp_path, overrides, status, reason):
    result = Trainer(mnist_config(tmp_path, **overrides)).run()
    assert result.status == status and reason in result.reason
    assert json.loads((Path(result.run_dir) / "result.json").read_text())["status"] == status


def test_cli_passes_model_flags_and_reports(tmp_path, capsys):
    code = main(
        ["train", "--model", "lenet2n", "--n", "2", "--dropin-length=30", "--dataset", "mnist",
         "--data-dir", str(DATA), "--train-size", "500", "--val-size", "100", "--max-iter", "10",
         "--test-interval", "10", "--runs-dir", str(tmp_path), "--name", "cli", "--quiet"]
    )  # fmt: skip
    assert code == 0
    config = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert config["model_options"] == {"n": 2, "dropin_length": 30}
    assert "after 10 iterations" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "mnist", "--data-dir", "EMPTY"], "MNIST not found in"),
        (["--model", "lenet9"], "unknown model 'lenet9'"),
        (["--model", "lenet2n", "--n", "2", "--depth", "3"], "has no option 'depth'"),
        (["--max-iter", "0"], "max_iter must be >= 1"),
    ],
)
def test_cli_mistakes_are_one_line(tmp_path, capsys, argv, message):
    argv = [a.replace("EMPTY", str(tmp_path)) for a in argv]
    assert main(["train", "--runs-dir", str(tmp_path), "--quiet", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_language_model_at_chance_is_named_by_its_loss(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 200)
    config = TrainConfig.from_dict({
        "name": "lm", "runs_dir": str(tmp_path), "dataset": f"text:{text}?context=8",
        "model": "gpt", "model_options": {"depth": 1, "width": 8, "heads": 2},
        "base_lr": 1e-9, "max_iter": 40, "test_interval": 20, "give_up_at_chance_after": 20,
        "quiet": True, "threads": 2,
    })  # fmt: skip
    result = Trainer(config).run()
    assert result.status == "did not converge"
    assert "test loss" in result.reason and "nats/token still at chance at 20" in result.reason
