import pytest
import torch

from grownet.layers import ChannelPad, pad_channels


@pytest.mark.parametrize(("shape", "channels"), [((2, 3, 4, 4), 5), ((2, 3), 7), ((2, 3, 5), 4)])
def test_pads_channels_with_zeros(shape, channels):
    x = torch.randn(shape)
    out = pad_channels(x, channels)
    assert out.shape == (shape[0], channels, *shape[2:])
    assert torch.equal(out[:, : shape[1]], x)
    assert torch.equal(out[:, shape[1] :], torch.zeros_like(out[:, shape[1] :]))


def test_same_width_is_identity():
    x = torch.randn(2, 3, 4, 4)
    assert pad_channels(x, 3) is x


@pytest.mark.parametrize(
    ("x", "channels", "match"),
    [
        (torch.ones(2, 4), 3, "channels must be >= the input's 4, got 3"),
        (torch.ones(4), 5, r"shape \(N, C, ...\), got \(4,\)"),
    ],
)
def test_rejects(x, channels, match):
    with pytest.raises(ValueError, match=match):
        pad_channels(x, channels)


def test_module():
    layer = ChannelPad(channels=8)
    assert layer(torch.ones(2, 4, 3, 3)).shape == (2, 8, 3, 3)
    assert layer.extra_repr() == "channels=8"
    with pytest.raises(ValueError, match="channels must be >= 1, got 0"):
        ChannelPad(channels=0)
