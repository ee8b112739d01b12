"""``grownet train --compile``: the same training, compiled chains; mistakes are one line."""

import functools
import json
from pathlib import Path

import pytest
import torch
import torch._dynamo

from grownet.cli import main
from grownet.train.config import TrainConfig
from grownet.train.trainer import Trainer


def digits_config(tmp_path: Path, **overrides) -> TrainConfig:
    settings = {
        "runs_dir": str(tmp_path),
        "model": "convnet",
        "dataset": "digits",
        "batch_size": 32,
        "base_lr": 0.1,
        "max_iter": 8,
        "test_interval": 8,
        "display_interval": 4,
        "device": "cpu",
        "quiet": True,
        **overrides,
    }
    return TrainConfig.from_dict(settings)


def test_compiled_training_matches_eager(tmp_path, monkeypatch):
    # aot_eager: Dynamo and AOTAutograd as inductor uses them, without its C++ build (slow here)
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    torch._dynamo.reset()
    compiled = Trainer(digits_config(tmp_path, name="compiled", compile=True))
    assert len(compiled.net.compiled_chains) == 1  # convnet is one chain, input to output
    compiled.run()
    eager = Trainer(digits_config(tmp_path, name="eager")).run()

    def losses(name: str) -> list[float]:
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [r["loss"] for r in map(json.loads, lines)]

    assert losses("compiled") == pytest.approx(losses("eager"), rel=1e-4)
    assert eager.iterations == 8
    torch._dynamo.reset()


def test_compile_without_a_cxx_compiler_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    argv = ["train", "--compile", "--device", "cpu", "--runs-dir", str(tmp_path), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--compile on the CPU needs a C++ compiler" in err and err.count("\n") == 1
