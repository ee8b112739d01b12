"""The papers' networks as :class:`~grownet.graph.NetGraph` builders.

``build(name, **options)`` looks a builder up in :data:`MODELS`. Builders take keyword-only
options, check them (a bad one raises a one-line :class:`ValueError` naming it and what was
given) and return a validated graph. Besides the builders, :data:`MODELS` holds fixed-depth
aliases (``vgg16``, ``resnet18``, ``resnet56``, ...).

Example:
    >>> from grownet.zoo import build
    >>> build("lenet2n", n=5).num_params()
    535760
    >>> build("resnet110").num_params()
    1727962
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from grownet.graph import NetGraph
from grownet.zoo.alexnet import alexnet, alexnet13
from grownet.zoo.caffe_cifar import cifar10_3layer, cifar10_11layer
from grownet.zoo.convnet import convnet
from grownet.zoo.lenet import lenet, lenet2n
from grownet.zoo.mlp import mlp
from grownet.zoo.resnet import cifar_resnet, imagenet_resnet
from grownet.zoo.transformer import gpt, vit
from grownet.zoo.vgg import vgg, vgg16_dropin

__all__ = [
    "MODELS",
    "alexnet",
    "alexnet13",
    "build",
    "cifar10_3layer",
    "cifar10_11layer",
    "cifar_resnet",
    "convnet",
    "gpt",
    "imagenet_resnet",
    "lenet",
    "lenet2n",
    "mlp",
    "options",
    "vgg",
    "vgg16_dropin",
    "vit",
]


def _alias(
    name: str, builder: Callable[..., NetGraph], doc: str, **fixed: Any
) -> Callable[..., NetGraph]:
    """``builder`` with some options fixed; passing one of them again is an error."""

    def alias(**options: Any) -> NetGraph:
        _check_not_fixed(name, alias, options)
        return builder(**fixed, **options)

    sig = inspect.signature(builder)
    alias.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[p for p in sig.parameters.values() if p.name not in fixed]
    )
    alias.fixed = (builder.__name__, fixed)  # type: ignore[attr-defined]
    alias.__name__ = alias.__qualname__ = name
    alias.__doc__ = (
        f"{doc} ({builder.__name__} with {', '.join(f'{k}={v!r}' for k, v in fixed.items())})."
    )
    return alias


MODELS: dict[str, Callable[..., NetGraph]] = {
    "convnet": convnet,
    "mlp": mlp,
    "lenet": lenet,
    "lenet2n": lenet2n,
    "cifar10_3layer": cifar10_3layer,
    "cifar10_11layer": cifar10_11layer,
    "alexnet": alexnet,
    "alexnet13": alexnet13,
    "vgg": vgg,
    "vgg16_dropin": vgg16_dropin,
    "cifar_resnet": cifar_resnet,
    "imagenet_resnet": imagenet_resnet,
    "gpt": gpt,
    "vit": vit,
}
for _d in (8, 11, 13, 16, 19):
    MODELS[f"vgg{_d}"] = _alias(f"vgg{_d}", vgg, f"VGG{_d} for ImageNet", depth=_d)
for _d in (18, 34, 50, 101, 152):
    MODELS[f"resnet{_d}"] = _alias(
        f"resnet{_d}", imagenet_resnet, f"ResNet-{_d} for ImageNet, torchvision's layout", depth=_d
    )
for _d in (20, 32, 44, 56, 110, 1202):
    MODELS[f"resnet{_d}"] = _alias(
        f"resnet{_d}", cifar_resnet, f"ResNet-{_d} for CIFAR (He et al.)", depth=_d
    )
del _d


def _check_not_fixed(name: str, builder: Callable[..., NetGraph], opts: dict[str, Any]) -> None:
    base, fixed = getattr(builder, "fixed", ("", {}))
    clash = sorted(set(opts) & set(fixed))
    if clash:
        key = clash[0]
        raise ValueError(f"model {name!r} fixes {key}={fixed[key]!r}; use {base!r} to choose it")


def options(name: str) -> dict[str, Any]:
    """The options model ``name`` takes and their defaults (``inspect.Parameter.empty``: required).

    >>> options("lenet2n")["dropin_length"]
    2500
    """
    return {p.name: p.default for p in inspect.signature(_lookup(name)).parameters.values()}


def _lookup(name: str) -> Callable[..., NetGraph]:
    builder = MODELS.get(name) if isinstance(name, str) else None
    if builder is None:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return builder


def build(name: str, **opts: Any) -> NetGraph:
    """Build zoo model ``name`` with keyword options; unknown names or options raise ValueError.

    >>> build("cifar_resnet", depth=20).num_params()
    269722
    >>> build("resnet9")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown model 'resnet9'; known models: alexnet, alexnet13, ...
    """
    builder = _lookup(name)
    _check_not_fixed(name, builder, opts)
    params = inspect.signature(builder).parameters
    unknown = sorted(set(opts) - set(params))
    if unknown:
        raise ValueError(
            f"model {name!r} has no option {unknown[0]!r}; options: {', '.join(params)}"
        )
    missing = [
        p for p, v in params.items() if v.default is inspect.Parameter.empty and p not in opts
    ]
    if missing:
        raise ValueError(f"model {name!r} needs option {missing[0]!r}")
    return builder(**opts)
