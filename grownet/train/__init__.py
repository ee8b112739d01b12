"""Training: the iteration-based trainer, LR policies, checkpoints and run directories."""

from grownet.train.config import ConfigError, TrainConfig
from grownet.train.trainer import Trainer
from grownet.train.verdict import TrainResult

__all__ = ["ConfigError", "TrainConfig", "TrainResult", "Trainer"]
