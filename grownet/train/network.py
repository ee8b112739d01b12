"""What a run trains: its network built from the config, initial weights copied in, and
whether ``torch.compile`` can run here.
"""

from __future__ import annotations

import inspect
import os
import shutil
import sys
from collections.abc import Mapping

import torch
from torch import Tensor

from grownet.graph import NetGraph
from grownet.train.config import ConfigError, TrainConfig
from grownet.zoo import build


def check_compile_support(device: torch.device) -> None:
    """Raise a one-line :class:`ConfigError` where ``torch.compile``'s default backend
    (inductor) cannot run, instead of a traceback at the first step."""
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        raise ConfigError(
            f"--compile: torch {torch.__version__} cannot compile on Python "
            f"{sys.version.split()[0]} on this platform; drop --compile"
        )
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            raise ConfigError("--compile on CUDA needs Triton (pip install triton); or drop it")
    elif device.type == "cpu":
        compilers = (os.environ.get("CXX"), "g++", "clang++", "c++")
        if not any(shutil.which(c) for c in compilers if c):
            raise ConfigError(
                "--compile on the CPU needs a C++ compiler (g++ or clang++, or $CXX) on PATH; "
                "install one or drop --compile"
            )


def build_graph(config: TrainConfig, in_shape: tuple[int, ...], num_classes: int) -> NetGraph:
    """The zoo model, shaped for the dataset unless the options say otherwise."""
    from grownet.graph.fx_import import PREFIX, build_imported
    from grownet.zoo import MODELS

    options = dict(config.model_options)
    if config.model.startswith(PREFIX):  # the user's own nn.Module, traced (grownet import)
        if options:
            raise ConfigError(f"model {config.model}: an imported network takes no builder "
                              f"options, got {sorted(options)}")  # fmt: skip
        return build_imported(config.model, tuple(in_shape), num_classes)
    if config.model not in MODELS:
        return build(config.model, **options)  # raises the registry's one-line error
    accepted = inspect.signature(MODELS[config.model]).parameters
    if "num_classes" in accepted:
        options.setdefault("num_classes", num_classes)
    if "in_shape" in accepted:
        options.setdefault("in_shape", tuple(in_shape))
    return build(config.model, **options)


def load_matching(net: torch.nn.Module, state: Mapping[str, Tensor]) -> None:
    """Copy ``state`` into ``net``: every entry must exist there with the same shape; entries
    ``net`` has and ``state`` lacks (layers added since) keep their values."""
    own = net.state_dict()
    for key, value in state.items():
        if key not in own:
            raise ConfigError(f"initial weights: {key!r} is not in the network; wrong graph?")
        if own[key].shape != value.shape:
            raise ConfigError(
                f"initial weights: {key!r} has shape {tuple(value.shape)}, the network's "
                f"{tuple(own[key].shape)}; narrow or widen the weights with the graph"
            )
    net.load_state_dict(state, strict=False)


def make_optimizer(net: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (or AdamW) over ``net``'s parameters; biases in their own group for Caffe's
    ``lr_mult``.

    AdamW (``optimizer = "adamw"``, the transformers' optimizer; betas ``(momentum, beta2)``)
    decays only the matrices and tables (tensors of two or more dimensions), as GPT-2 and
    nanoGPT do: decaying norms' gains and biases towards 0 only hurts.
    """
    named = list(net.named_parameters())
    biases = [p for n, p in named if n.endswith(".bias")]
    rest = [p for n, p in named if not n.endswith(".bias")]
    if config.optimizer == "adamw":
        groups = [
            {"params": [p for p in rest if p.dim() >= 2], "lr_mult": 1.0},
            {"params": [p for p in rest if p.dim() < 2], "lr_mult": 1.0, "weight_decay": 0.0},
            {"params": biases, "lr_mult": config.bias_lr_mult, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(
            [g for g in groups if g["params"]],
            lr=config.base_lr,
            betas=(config.momentum, config.beta2),
            weight_decay=config.weight_decay,
        )
    groups = [{"params": rest, "lr_mult": 1.0}]
    if biases:
        groups.append({"params": biases, "lr_mult": config.bias_lr_mult})
    return torch.optim.SGD(
        groups,
        lr=config.base_lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov,
    )
