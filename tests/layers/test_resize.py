import pytest
import torch
import torch.nn.functional as F

from grownet.layers import Resize, resize_crop, resize_interpolate

# Channel 0 is [[1, 2], [3, 4]], channel 1 is [[5, 6], [7, 8]].
IMAGE = torch.arange(1.0, 9.0).view(1, 2, 2, 2)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((2, 2, 2), [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]),
        ((1, 1, 1), [[[1]]]),
        ((1, 1, 3), [[[1, 2, 0]]]),
        ((3, 3, 1), [[[1], [3], [0]], [[5], [7], [0]], [[5], [7], [0]]]),
    ],
)
def test_crop_pads_crops_truncates_and_repeats_last_channel(shape, expected):
    assert torch.equal(resize_crop(IMAGE, shape), torch.tensor([expected], dtype=IMAGE.dtype))


@pytest.mark.parametrize(
    ("shape", "expected"), [((5,), [1, 2, 3, 3, 3]), ((2,), [1, 2]), ((3,), [1, 2, 3])]
)
def test_crop_on_features(shape, expected):
    x = torch.tensor([[1.0, 2.0, 3.0]])
    assert torch.equal(resize_crop(x, shape), torch.tensor([expected], dtype=x.dtype))


@pytest.mark.parametrize(
    ("in_shape", "shape"),
    [
        ((3, 4, 4), (3, 8, 8)),
        ((3, 4, 4), (3, 2, 2)),
        ((3, 4, 4), (2, 6, 3)),
        ((3, 4, 4), (3, 4, 4)),
        ((5,), (2,)),
    ],
)
def test_interpolate_shapes(in_shape, shape):
    out = resize_interpolate(torch.randn(2, *in_shape), shape)
    assert out.shape == (2, *shape)


def test_interpolate_area_down_averages_blocks():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    expected = torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]])
    assert torch.equal(resize_interpolate(x, (1, 2, 2)), expected)


@pytest.mark.parametrize("shape", [(1, 3, 3), (1, 2, 5), (1, 9, 9), (1, 5, 8)])
def test_interpolate_keeps_constant_image_constant(shape):
    out = resize_interpolate(torch.full((1, 1, 7, 7), 3.0), shape)
    torch.testing.assert_close(out, torch.full((1, *shape), 3.0))


@pytest.mark.parametrize(
    ("size", "reference"),
    [
        ((8, 8), lambda x, size: F.interpolate(x, size, mode="bicubic", align_corners=False)),
        ((8, 2), F.adaptive_avg_pool2d),  # a shrinking width picks area, as in Caffe
        ((2, 6), lambda x, size: F.interpolate(x, size, mode="bicubic", align_corners=False)),
    ],
)
def test_interpolate_picks_method_by_width(size, reference):
    x = torch.randn(1, 2, 4, 4)
    assert torch.equal(resize_interpolate(x, (2, *size)), reference(x, size))


def test_interpolate_appends_extra_channels():
    out = resize_interpolate(IMAGE, (4, 2, 2), extra_channels=torch.tensor([1, 0]))
    assert torch.equal(out, IMAGE[:, [0, 1, 1, 0]])


def test_module_draws_extra_channels_once_from_seed():
    state = torch.get_rng_state()
    first = Resize((3, 4, 4), (6, 2, 2), method="interpolate", seed=7)
    second = Resize((3, 4, 4), (6, 2, 2), method="interpolate", seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first.extra_channels, second.extra_channels)
    assert first.extra_channels.shape == (3,)
    assert 0 <= first.extra_channels.min() <= first.extra_channels.max() < 3
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(first(x), first(x))
    expected = resize_interpolate(x, (6, 2, 2), extra_channels=first.extra_channels)
    assert torch.equal(first(x), expected)
    assert first.state_dict() == {}


def test_module_seed_changes_extra_channels():
    draws = [Resize((3,), (40,), method="interpolate", seed=s).extra_channels for s in (0, 1)]
    assert not torch.equal(*draws)


@pytest.mark.parametrize(
    ("in_shape", "out_shape", "method", "has_extra"),
    [
        ((2, 2, 2), (3, 3, 1), "crop", False),
        ((2, 2, 2), (3, 3, 1), "interpolate", True),
        ((2, 2, 2), (1, 4, 4), "interpolate", False),
    ],
)
def test_module_applies_method(in_shape, out_shape, method, has_extra):
    layer = Resize(in_shape, out_shape, method=method)
    assert (layer.extra_channels is not None) == has_extra
    function = resize_crop if method == "crop" else resize_interpolate
    kwargs = {"extra_channels": layer.extra_channels} if has_extra else {}
    assert torch.equal(layer(IMAGE), function(IMAGE, out_shape, **kwargs))


def test_extra_repr():
    layer = Resize((3, 4, 4), (5, 2, 2), method="interpolate", seed=3)
    expected = "in_shape=(3, 4, 4), out_shape=(5, 2, 2), method='interpolate', seed=3"
    assert layer.extra_repr() == expected


@pytest.mark.parametrize(
    ("function", "shape", "kwargs", "match"),
    [
        (resize_crop, (2,), {}, r"needs a 2-D input, got shape \(1, 2, 2, 2\)"),
        (resize_crop, (2, 2), {}, r"shape must be \(F,\) or \(C, H, W\) .*got \(2, 2\)"),
        (resize_crop, (0, 2, 2), {}, r"sizes >= 1, got \(0, 2, 2\)"),
        (resize_interpolate, (4, 2, 2), {}, "adding 2 channels needs extra_channels, got None"),
        (
            resize_interpolate,
            (4, 2, 2),
            {"extra_channels": torch.tensor([0.0, 1.0])},
            r"LongTensor of shape \(2,\), got dtype torch.float32",
        ),
        (
            resize_interpolate,
            (3, 2, 2),
            {"extra_channels": torch.tensor([0, 1])},
            r"shape \(1,\), got dtype torch.int64 and shape \(2,\)",
        ),
        (
            resize_interpolate,
            (4, 2, 2),
            {"extra_channels": torch.tensor([0, 2])},
            r"index the 2 input channels, got \[0, 2\]",
        ),
    ],
)
def test_functions_reject(function, shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        function(IMAGE, shape, **kwargs)


@pytest.mark.parametrize(
    ("in_shape", "out_shape", "kwargs", "match"),
    [
        ((3, 4, 4), (3,), {}, r"same rank, got \(3, 4, 4\) and \(3,\)"),
        ((3, 4), (3, 4), {}, r"in_shape must be \(F,\) or \(C, H, W\)"),
        ((3,), (0,), {}, "out_shape must be"),
        ((3,), (4,), {"method": "nearest"}, "method must be one of .*'nearest'"),
        ((3,), (4,), {"seed": -1}, "seed must be >= 0, got -1"),
    ],
)
def test_module_rejects(in_shape, out_shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Resize(in_shape, out_shape, **kwargs)


def test_module_rejects_input_of_other_shape():
    with pytest.raises(ValueError, match=r"\(N, \*\(3, 4, 4\)\), got \(1, 2, 2, 2\)"):
        Resize((3, 4, 4), (3, 2, 2))(IMAGE)
