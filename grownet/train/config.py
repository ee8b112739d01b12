"""One flat, typed config per training run, written into every run directory.

A run is fully described by a :class:`TrainConfig`: the model and its builder options, the
data, the solver (Caffe's names: ``base_lr``, ``lr_policy``, ``gamma``, ``power``, ``stepsize``,
``max_iter``, ``test_interval``), the device and the seed. It loads from a TOML file and from
command-line flags, and the resolved config is saved as ``config.json`` beside the metrics.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grownet.devices import DEVICE
from grownet.errors import BadValueError
from grownet.specfile import read_toml
from grownet.train.rundir import check_run_name
from grownet.train.schedule import LRSchedule

OPTIMIZERS = ("sgd", "adamw")


class ConfigError(BadValueError):
    """A config mistake; the message names the key and the fix."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (defaults: Caffe's LeNet solver)."""

    name: str = ""
    runs_dir: str = "runs"
    model: str = "lenet"
    model_options: dict[str, Any] = field(default_factory=dict)
    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    train_size: int | None = None
    val_size: int = 0
    folds: int = 0
    fold: int = 0
    batch_size: int = 64
    test_batch_size: int = 500
    max_iter: int = 10_000
    test_interval: int = 500
    display_interval: int = 100
    base_lr: float = 0.01
    lr_policy: str = "inv"
    gamma: float = 1e-4
    power: float = 0.75
    stepsize: int = 0
    stepvalues: list[int] = field(default_factory=list)
    warmup: int = 0
    schedule_offset: int = 0
    optimizer: str = "sgd"
    momentum: float = 0.9
    beta2: float = 0.999
    nesterov: bool = False
    weight_decay: float = 5e-4
    bias_lr_mult: float = 1.0
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    threads: int | None = None
    checkpoint_interval: int = 0
    give_up_at_chance_after: int | None = None
    quiet: bool = False
    extensions: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        positive = ("batch_size", "test_batch_size", "max_iter", "test_interval",
                    "display_interval", "threads", "train_size")  # fmt: skip
        for key in positive:
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)!r}")
        nonneg = ("momentum", "weight_decay", "bias_lr_mult", "seed", "checkpoint_interval",
                  "val_size", "warmup", "give_up_at_chance_after", "gamma", "power",
                  "stepsize", "schedule_offset", "folds", "fold")  # fmt: skip
        for key in nonneg:
            if getattr(self, key) is not None and getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self, key)!r}")
        if self.folds == 1 or (self.folds and self.fold >= self.folds):
            raise ConfigError(f"folds must be 0 (none) or >= 2 with fold in [0, folds), got "
                              f"folds={self.folds}, fold={self.fold}")  # fmt: skip
        if self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov needs momentum > 0")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, "
                              f"got {self.optimizer!r}")  # fmt: skip
        if self.optimizer == "adamw" and not (0 <= self.momentum < 1 and 0 <= self.beta2 < 1):
            raise ConfigError(f"adamw needs momentum (beta1) and beta2 in [0, 1), got "
                              f"{self.momentum!r} and {self.beta2!r}")  # fmt: skip
        if self.optimizer == "adamw" and self.nesterov:
            raise ConfigError("nesterov is an sgd option; adamw takes none")
        if not DEVICE.fullmatch(self.device):
            raise ConfigError(
                f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}"
            )
        if self.name:
            check_run_name(self.name, what="name")
        self.schedule()  # refuses a policy its settings cannot run (multistep without steps)

    def schedule(self) -> LRSchedule:
        """The learning-rate schedule these settings define."""
        try:
            return LRSchedule(
                self.lr_policy,
                base_lr=self.base_lr,
                max_iter=self.schedule_offset + self.max_iter,
                gamma=self.gamma,
                power=self.power,
                stepsize=self.stepsize,
                stepvalues=tuple(self.stepvalues),
                warmup=self.warmup,
            )
        except ValueError as err:
            raise ConfigError(str(err)) from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> TrainConfig:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(
                f"{source}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(fields))}"
            )
        hints = typing.get_type_hints(cls)
        checked = {k: _check_type(k, v, hints[k], source) for k, v in data.items()}
        return cls(**checked)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Read ``path`` (a flat table, with builder options under ``[model_options]``)."""
        path = Path(path)
        missing = f"config file {path} does not exist"
        data = read_toml(path, error=ConfigError, missing=missing)
        train = data.pop("train", {})
        merged = {**data, **train, **overrides}
        for key in ("paper", "notes"):  # recipe annotations, not run settings
            merged.pop(key, None)
        return cls.from_dict(merged, source=str(path))


HELP: dict[str, str] = {
    "name": "run name: the directory under runs_dir (default: model-dataset-seed-time)",
    "runs_dir": "where run directories go (default: runs)",
    "model": "zoo model (see `grownet models`)",
    "dataset": "digits, iris, wine, breast_cancer (embedded), mnist, fashion_mnist, cifar10, "
    "cifar100, svhn, imagenet, tinyshakespeare; or your own: imagefolder:PATH?size=32, "
    "npz:PATH, pt:PATH, csv:PATH?target=COLUMN, text:PATH?context=64&level=char",
    "data_dir": "dataset root (default: $GROWNET_DATA, else ~/.cache/grownet/data)",
    "download": "download the dataset if its files are missing",
    "train_size": "train on a seeded subset of this many images",
    "val_size": "hold out this many training images for validation (evaluated instead of test)",
    "folds": "cross-validation: hold out one of this many stratified folds of the training set "
    "for validation (0: none)",
    "fold": "which fold (0-based) folds holds out",
    "batch_size": "training mini-batch size (Caffe LeNet: 64)",
    "test_batch_size": "evaluation batch size",
    "max_iter": "training iterations",
    "test_interval": "evaluate every this many iterations",
    "display_interval": "log a train record every this many iterations",
    "base_lr": "base learning rate",
    "lr_policy": "fixed, step, multistep, inv (Caffe LeNet) or cosine",
    "gamma": "step/multistep factor, or inv's gamma",
    "power": "inv's power",
    "stepsize": "step policy: iterations per step",
    "stepvalues": "multistep policy: iterations where the rate drops",
    "warmup": "linear warm-up iterations",
    "schedule_offset": "iterations of the learning-rate schedule spent before this run (by the "
    "run it grows from): the rate at iteration i is the schedule's at offset + i",
    "optimizer": "sgd (SGD with momentum, the papers') or adamw (transformers; decays only "
    "weight matrices and tables)",
    "momentum": "SGD momentum, or AdamW's beta1",
    "beta2": "AdamW's beta2 (nanoGPT's Tiny Shakespeare: 0.99)",
    "nesterov": "Nesterov momentum",
    "weight_decay": "L2 weight decay",
    "bias_lr_mult": "learning-rate multiplier for biases (Caffe's lr_mult: 2 in its examples)",
    "seed": "seed for weights, data order, augmentation and the per-step plan",
    "device": "auto (CUDA if available), cpu or cuda[:N]",
    "amp": "bf16 autocast (default: on for CUDA, off on CPU)",
    "channels_last": "channels-last memory format (default: on for image inputs)",
    "compile": "torch.compile the straight chains of layers (residual branches, trunk pieces); "
    "the per-step gating stays in Python, so changing plans do not recompile",
    "threads": "CPU threads for PyTorch (default: PyTorch's choice)",
    "checkpoint_interval": "also checkpoint every this many iterations (always at the end)",
    "give_up_at_chance_after": "end the run as 'did not converge' if test accuracy is still "
    "at chance at or after this iteration",
    "quiet": "no progress bar",
    "extensions": "the max_iter values this run had before each --extend (kept by the trainer)",
}


def _check_type(key: str, value: Any, hint: Any, source: str) -> Any:
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for kind in allowed:
        origin = typing.get_origin(kind) or kind
        if kind is type(None) and value is None:
            return value
        if origin is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if origin is int and isinstance(value, bool):
            continue
        if isinstance(origin, type) and isinstance(value, origin):
            return value
    names = " or ".join(getattr(k, "__name__", str(k)) for k in allowed)
    raise ConfigError(f"{source}: {key} must be {names}, got {value!r}")
