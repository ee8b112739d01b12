import numpy as np
import pytest
import torch

from grownet.data import Preprocess, channel_stats, pixel_mean, recipe
from grownet.data import preprocess as preprocess_module


def test_statistics_are_exact_across_chunks(monkeypatch):
    monkeypatch.setattr(preprocess_module, "_CHUNK", 7)  # force several chunks
    x = torch.randint(
        0, 256, (50, 3, 5, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    a = x.numpy().astype(np.float64)
    assert np.allclose(pixel_mean(x).numpy(), a.mean(0), rtol=0, atol=1e-12)
    mean, std = channel_stats(x)
    assert np.allclose(mean.flatten().numpy(), a.mean((0, 2, 3)), atol=1e-12)
    assert np.allclose(std.flatten().numpy(), a.std((0, 2, 3)), atol=1e-10)


def test_affine_equals_scale_subtract_divide():
    mean, std = (
        torch.rand(3, 4, 4, dtype=torch.float64),
        torch.rand(3, 1, 1, dtype=torch.float64) + 0.5,
    )
    pre = Preprocess(scale=1 / 255, mean=mean, std=std)
    x = torch.randint(0, 256, (6, 3, 4, 4), dtype=torch.uint8)
    a, b = pre.affine()
    assert torch.allclose(x * a + b, ((x.double() / 255 - mean) / std).float(), atol=1e-6)


@pytest.mark.parametrize(
    ("family", "name", "scale", "pad", "flip", "crop", "warp"),
    [
        ("digits", "paper", 1 / 16, 0, False, None, False),
        ("mnist", "paper", 1 / 256, 0, False, None, False),
        ("mnist", "caffe", 1 / 256, 0, False, None, False),
        ("cifar", "paper", 1 / 255, 4, True, None, False),
        ("imagenet", "paper", 1 / 255, 0, True, 224, False),
        ("imagenet", "caffe", 1.0, 0, True, 227, True),
    ],
)
def test_recipe_table(family, name, scale, pad, flip, crop, warp):
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    pre = recipe(family, name, x)
    assert (pre.scale, pre.pad, pre.flip, pre.crop, pre.warp, pre.name) == (
        scale,
        pad,
        flip,
        crop,
        warp,
        name,
    )
    assert isinstance(pre.describe(), dict)


def test_caffe_imagenet_mean_is_in_raw_units():
    pre = recipe("imagenet", "caffe")
    assert torch.allclose(
        pre.mean.flatten(), torch.tensor([123.68, 116.779, 103.939], dtype=torch.float64)
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": 0}, "scale"),
        ({"scale": float("nan")}, "scale"),
        ({"mean": torch.zeros(3)}, "mean"),
        ({"std": torch.zeros(3, 1, 1)}, "std must be > 0"),
        ({"pad": -1}, "pad"),
        ({"flip": 1}, "flip"),
        ({"crop": 0}, "crop"),
        ({"crop": 10, "resize": 8}, "resize"),
    ],
)
def test_preprocess_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Preprocess(**kwargs)


def test_recipe_rejects_unknown_names():
    with pytest.raises(ValueError, match="preprocessing must be one of"):
        recipe("svhn", "caffe")
    with pytest.raises(ValueError, match="needs train_x"):
        recipe("cifar", "paper")
