"""A tiny search to run end to end in seconds: four classes, each carried by one of eight
input features, through a 16-unit MLP, one thread per run."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

HEAD = """
name = "{name}"
dataset = "npz:{path}"
[base]
model = "mlp"
options = {{ widths = [16] }}
[train]
batch_size = 32
base_lr = 0.05
lr_policy = "cosine"
test_interval = 40
display_interval = 20
threads = 1
quiet = true
"""


@pytest.fixture
def tiny_spec(tmp_path) -> Callable[[str, str], Path]:
    """``tiny_spec(name, tables)``: the path of a spec running ``name`` on the tiny data,
    ``tables`` (TOML text: [growth], [width], ...) after its [base] and [train]."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    x = rng.normal(0.0, 0.5, (400, 8)).astype(np.float32)
    x[np.arange(400), y] += 2.0
    np.savez(tmp_path / "d.npz", x=x[:300], y=y[:300], x_test=x[300:], y_test=y[300:])

    def write(name: str, tables: str) -> Path:
        spec = tmp_path / f"{name}.toml"
        spec.write_text(HEAD.format(name=name, path=tmp_path / "d.npz") + tables)
        return spec

    return write
