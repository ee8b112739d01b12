"""How a batch of raw uint8 images becomes model input, per dataset and recipe.

A ``Preprocess`` says: multiply by ``scale``, subtract ``mean`` (a per-pixel C×H×W image or a
per-channel C×1×1 vector, in scaled units), divide by ``std``; and, in training, augment with a
``pad``-pixel zero pad plus random crop and a random horizontal ``flip``. The streaming loader
(ImageNet) also reads ``crop``, ``resize`` and ``warp`` for its per-image geometry.

Recipes (``preprocessing=``):

- ``paper``: what the reproduced papers did. MNIST: Caffe's ``scale: 0.00390625`` (x/256), no
  mean, no augmentation (DropIn's LeNet runs). CIFAR: per-pixel mean of the training images,
  4-pixel zero pad + random 32×32 crop, random flip (He et al., used by depth dropout and
  stochastic depth). SVHN: per-channel mean/std, no augmentation (stochastic depth).
  ImageNet: RandomResizedCrop(224) + flip, Resize(256) + CenterCrop(224) for eval, the usual
  ImageNet mean/std (fb.resnet.torch, used by the ResNet papers).
- ``caffe``: the Caffe examples DropIn's memorandum built on: MNIST as ``paper``; CIFAR-10
  per-pixel mean in 0..255 units, no augmentation; ImageNet images warped to 256×256, random
  227×227 crops + mirror, mean subtraction in 0..255 units (AlexNet).
- ``standard``: x/255 and per-channel mean/std of the training set; CIFAR keeps pad-crop-flip.
- ``none``: scale to [0, 1] only (digits: x/16, images: x/255).

Your own data (``imagefolder:``, ``npz:``, ``pt:``, ``csv:`` and the scikit-learn tables):
images are scaled (uint8: x/255) and standardised per channel with the training split's
statistics, never augmented (a flip is not harmless on every kind of image); tabular features
arrive standardised and one-hot encoded by ``grownet.data.encoding``, so their recipe is the
identity. Text (``tinyshakespeare``, ``text:``) is token ids: one recipe, ``paper``, the identity.
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["PREPROCESSINGS", "Preprocess", "channel_stats", "pixel_mean", "recipe"]

PREPROCESSINGS = ("paper", "caffe", "standard", "none")

# torchvision's ImageNet statistics (RGB, [0, 1] units) and Caffe's ILSVRC-2012 mean (the
# per-channel mean of its mean image; Caffe lists it as BGR 104, 117, 123).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_IMAGENET_MEAN = (123.68, 116.779, 103.939)

# Images are summed this many at a time so statistics never hold a float copy of the set.
_CHUNK = 4096


def _check_int(name: str, value: object, *, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


@dataclass(frozen=True, eq=False)
class Preprocess:
    """Turn a uint8 N×C×H×W batch into model input; optionally augment it (training only).

    >>> p = Preprocess(scale=1 / 256)
    >>> a, b = p.affine()
    >>> (torch.tensor([[[[255]]]], dtype=torch.uint8) * a + b).item()
    0.99609375
    """

    scale: float = 1.0 / 255.0
    mean: Tensor | None = None
    std: Tensor | None = None
    pad: int = 0
    flip: bool = False
    crop: int | None = None
    resize: int | None = None
    warp: bool = False
    name: str = "custom"

    def __post_init__(self) -> None:
        if not isinstance(self.scale, int | float) or not (
            math.isfinite(self.scale) and self.scale > 0
        ):
            raise ValueError(f"scale must be a finite number > 0, got {self.scale!r}")
        for field in ("mean", "std"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, Tensor) or value.dim() != 3):
                raise ValueError(f"{field} must be None or a CxHxW tensor, got {value!r}")
        if self.std is not None and not bool((self.std > 0).all()):
            raise ValueError(f"std must be > 0 everywhere, got {self.std.flatten().tolist()}")
        _check_int("pad", self.pad, low=0)
        for field in ("flip", "warp"):
            if not isinstance(getattr(self, field), bool):
                raise ValueError(f"{field} must be a bool, got {getattr(self, field)!r}")
        for field in ("crop", "resize"):
            if getattr(self, field) is not None:
                _check_int(field, getattr(self, field), low=1)
        if self.crop is not None and self.resize is not None and self.resize < self.crop:
            raise ValueError(f"resize ({self.resize}) must be >= crop ({self.crop})")

    @property
    def augments(self) -> bool:
        """Whether training batches are augmented on the device (pad-crop or flip)."""
        return self.pad > 0 or self.flip

    def affine(
        self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> tuple[Tensor, Tensor]:
        """(a, b) with ``model_input = x * a + b``: scale, mean and std folded into one op.

        Folding saves two passes over every batch; it is computed in float64 so the folded
        constants are as exact as the dtype allows.
        """
        # 0-d defaults broadcast over images (N×C×H×W) and features (N×F) alike.
        std = torch.ones((), dtype=torch.float64) if self.std is None else self.std.double()
        mean = torch.zeros((), dtype=torch.float64) if self.mean is None else self.mean
        a = self.scale / std
        b = -mean.double() / std
        return a.to(device, dtype), b.to(device, dtype)

    def describe(self) -> dict:
        """A JSON-ready summary for run directories and reports (tensors summarised)."""

        def summary(t: Tensor | None) -> object:
            if t is None:
                return None
            if t[0].numel() == 1:  # per-channel: small enough to list
                return [round(v, 6) for v in t.flatten().tolist()]
            return {"per_pixel": list(t.shape), "channel_means": t.mean((1, 2)).tolist()}

        return {
            "name": self.name,
            "scale": self.scale,
            "mean": summary(self.mean),
            "std": summary(self.std),
            "pad": self.pad,
            "flip": self.flip,
            "crop": self.crop,
            "resize": self.resize,
            "warp": self.warp,
        }


def _check_images(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty NxCxHxW tensor, got {x!r:.80}")


def pixel_mean(x: Tensor) -> Tensor:
    """The mean image (C×H×W, float64, raw units) of ``x``, exact for uint8 input.

    >>> pixel_mean(torch.tensor([[[[0, 2]]], [[[4, 4]]]], dtype=torch.uint8)).tolist()
    [[[2.0, 3.0]]]
    """
    _check_images(x)
    # uint8 sums accumulate in int64 chunk by chunk: exact, and no float copy of the set.
    acc_dtype = torch.int64 if x.dtype == torch.uint8 else torch.float64
    total = torch.zeros(x.shape[1:], dtype=acc_dtype, device=x.device)
    for start in range(0, x.shape[0], _CHUNK):
        total += x[start : start + _CHUNK].sum(0, dtype=acc_dtype)
    return total.double().cpu() / x.shape[0]


def channel_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (population) standard deviation of ``x``, each C×1×1 float64.

    >>> m, s = channel_stats(torch.tensor([[[[0, 2]]], [[[4, 6]]]], dtype=torch.uint8))
    >>> m.flatten().tolist(), s.flatten().tolist()
    ([3.0], [2.23606797749979])
    """
    _check_images(x)
    acc_dtype = torch.int64 if x.dtype == torch.uint8 else torch.float64
    c = x.shape[1]
    s1 = torch.zeros(c, dtype=acc_dtype, device=x.device)
    s2 = torch.zeros(c, dtype=acc_dtype, device=x.device)
    for start in range(0, x.shape[0], _CHUNK):
        chunk = x[start : start + _CHUNK].to(acc_dtype)
        s1 += chunk.sum((0, 2, 3))
        s2 += (chunk * chunk).sum((0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = s1.double().cpu() / count
    var = (s2.double().cpu() / count - mean * mean).clamp_min(0.0)
    return mean.view(c, 1, 1), var.sqrt().view(c, 1, 1)


# (dataset family, recipe) -> settings; "mean" says which statistic of the training set to
# subtract ("pixel", "channel", or fixed per-channel values in [0, 1] units), "std" likewise.
_RECIPES: dict[tuple[str, str], dict] = {
    ("digits", "paper"): {"scale": 1 / 16},
    ("digits", "standard"): {"scale": 1 / 16, "mean": "channel", "std": "channel"},
    ("digits", "none"): {"scale": 1 / 16},
    ("mnist", "paper"): {"scale": 1 / 256},
    ("mnist", "caffe"): {"scale": 1 / 256},
    ("mnist", "standard"): {"mean": "channel", "std": "channel"},
    ("mnist", "none"): {},
    ("cifar", "paper"): {"mean": "pixel", "pad": 4, "flip": True},
    ("cifar", "caffe"): {"scale": 1.0, "mean": "pixel"},
    ("cifar", "standard"): {"mean": "channel", "std": "channel", "pad": 4, "flip": True},
    ("cifar", "none"): {},
    ("svhn", "paper"): {"mean": "channel", "std": "channel"},
    ("svhn", "standard"): {"mean": "channel", "std": "channel"},
    ("svhn", "none"): {},
    ("imagenet", "paper"): {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "flip": True},
    ("imagenet", "standard"): {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "flip": True},
    ("imagenet", "caffe"): {
        "scale": 1.0,
        "mean": tuple(v / 255 for v in CAFFE_IMAGENET_MEAN),
        "flip": True,
        "crop": 227,
        "warp": True,
    },
    ("imagenet", "none"): {"flip": True},
    # Your own data: uint8 images, float images (npz/pt), encoded tabular features.
    ("images", "paper"): {"mean": "channel", "std": "channel"},
    ("images", "standard"): {"mean": "channel", "std": "channel"},
    ("images", "none"): {},
    ("float_images", "paper"): {"scale": 1.0, "mean": "channel", "std": "channel"},
    ("float_images", "standard"): {"scale": 1.0, "mean": "channel", "std": "channel"},
    ("float_images", "none"): {"scale": 1.0},
    ("features", "paper"): {"scale": 1.0},
    ("features", "standard"): {"scale": 1.0},
    # Token ids (grownet.data.text): served as they are, nothing to scale or fit.
    ("text", "paper"): {"scale": 1.0},
}


def recipes_for(family: str) -> tuple[str, ...]:
    """The recipe names a dataset family offers, e.g. ``recipes_for("svhn")``."""
    return tuple(r for f, r in _RECIPES if f == family)


def recipe(family: str, preprocessing: str, train_x: Tensor | None = None) -> Preprocess:
    """The ``Preprocess`` of a recipe, with statistics computed from the training images.

    ``train_x`` (the uint8 training split, after any validation hold-out) is needed when the
    recipe subtracts a mean or divides by a std of the data; fixed recipes ignore it.

    >>> recipe("mnist", "paper").scale
    0.00390625
    """
    if (family, preprocessing) not in _RECIPES:
        offered = recipes_for(family)
        if not offered:
            raise ValueError(f"unknown dataset family {family!r}")
        raise ValueError(
            f"preprocessing must be one of {offered} for {family}, got {preprocessing!r}"
        )
    spec = dict(_RECIPES[family, preprocessing])
    scale = spec.pop("scale", 1 / 255)
    stats = {}
    for key in ("mean", "std"):
        kind = spec.pop(key, None)
        if isinstance(kind, tuple):  # fixed values in [0, 1] units -> scaled units
            stats[key] = torch.tensor(kind, dtype=torch.float64).view(-1, 1, 1) * 255 * scale
        elif kind is not None:
            if train_x is None:
                raise ValueError(f"recipe {family}/{preprocessing} needs train_x for its {key}")
            if kind == "pixel":
                stats[key] = pixel_mean(train_x) * scale
            elif key == "mean":
                stats[key] = channel_stats(train_x)[0] * scale
            else:  # a constant channel (a user's blank band) is left unscaled, not divided by 0
                std = channel_stats(train_x)[1]
                stats[key] = torch.where(std > 0, std, torch.ones_like(std)) * scale
    if family == "imagenet":
        spec.setdefault("crop", 224)
        spec.setdefault("resize", 256)
    # Kept in float64: the loader folds them into one affine op and casts only then.
    mean, std = stats.get("mean"), stats.get("std")
    return Preprocess(
        scale=scale,
        mean=mean,
        std=std,
        name=preprocessing,
        **spec,
    )
