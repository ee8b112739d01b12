"""Training: the iteration-based trainer, LR policies, checkpoints and run directories."""

from typing import Any

from grownet.train.config import ConfigError, TrainConfig

__all__ = ["ConfigError", "TrainConfig", "TrainResult", "Trainer"]


def __getattr__(name: str) -> Any:
    # The trainer and its result import torch: loaded on first use, so ``grownet --help``
    # (which reads TrainConfig's fields for its flags) starts without it.
    if name == "Trainer":
        from grownet.train.trainer import Trainer

        return Trainer
    if name == "TrainResult":
        from grownet.train.verdict import TrainResult

        return TrainResult
    raise AttributeError(f"module 'grownet.train' has no attribute {name!r}")
