"""Data whose classes are each carried by one input feature, and a tiny search on it to run
end to end in seconds: four classes of eight features through a 16-unit MLP, one thread per
run."""

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


Draw = Callable[[np.random.Generator, int, int, int], tuple[np.ndarray, np.ndarray]]


def _draw(
    rng: np.random.Generator, n: int, classes: int, features: int
) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, classes, n)
    x = rng.normal(0.0, 0.5, (n, features)).astype(np.float32)
    x[np.arange(n), y] += 2.0  # each class carried by its own feature
    return x, y


@pytest.fixture(scope="session")
def feature_classes() -> Draw:
    """``draw(rng, n, classes, features)``: n samples (x, y), each class carried by its own
    input feature under Gaussian noise: data whose width needs are known."""
    return _draw


@pytest.fixture
def tiny_spec(tmp_path) -> Callable[[str, str], Path]:
    """``tiny_spec(name, tables)``: the path of a spec running ``name`` on the tiny data,
    ``tables`` (TOML text: [growth], [width], ...) after its [base] and [train]."""
    x, y = _draw(np.random.default_rng(0), 400, 4, 8)
    np.savez(tmp_path / "d.npz", x=x[:300], y=y[:300], x_test=x[300:], y_test=y[300:])

    def write(name: str, tables: str) -> Path:
        spec = tmp_path / f"{name}.toml"
        spec.write_text(HEAD.format(name=name, path=tmp_path / "d.npz") + tables)
        return spec

    return write
