"""Batched augmentation against a naive per-image reference."""

import pytest
import torch
import torch.nn.functional as F

from grownet.data import (
    apply_augmentation,
    draw_augmentation,
    normalize,
    random_crop,
    random_flip,
)


def naive(x, oy, ox, flips, pad):
    """One image at a time: zero-pad, cut the window, mirror if asked."""
    out = []
    h, w = x.shape[-2:]
    for i in range(x.shape[0]):
        img = F.pad(x[i], (pad, pad, pad, pad))[:, oy[i] : oy[i] + h, ox[i] : ox[i] + w]
        out.append(img.flip(-1) if flips[i] else img)
    return torch.stack(out)


@pytest.mark.parametrize(
    ("n", "c", "h", "w", "pad"), [(16, 3, 8, 8, 4), (7, 1, 5, 9, 2), (4, 3, 6, 6, 0)]
)
def test_batched_augmentation_matches_per_image_reference(n, c, h, w, pad):
    x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(0))
    aug = draw_augmentation(n, pad=pad, flip=True, generator=torch.Generator().manual_seed(1))
    assert bool(((aug.oy >= 0) & (aug.oy <= 2 * pad) & (aug.ox >= 0) & (aug.ox <= 2 * pad)).all())
    expected = naive(x, aug.oy.tolist(), aug.ox.tolist(), aug.flip.tolist(), pad)
    assert torch.equal(apply_augmentation(x, aug, pad=pad), expected)


def test_offsets_cover_the_whole_range_and_flips_are_about_half():
    aug = draw_augmentation(4000, pad=4, flip=True, generator=torch.Generator().manual_seed(2))
    assert set(aug.oy.tolist()) == set(range(9)) == set(aug.ox.tolist())
    assert 0.45 < aug.flip.float().mean().item() < 0.55
    off = draw_augmentation(10, pad=4, flip=False, generator=torch.Generator().manual_seed(2))
    assert not off.flip.any()


def test_crop_at_the_centre_is_the_identity_and_corner_shows_the_padding():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4) + 1
    centre = torch.full((2,), 2)
    assert torch.equal(random_crop(x, centre, centre, pad=2), x)
    corner = random_crop(
        x, torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long), pad=2
    )
    assert torch.equal(corner[..., :2, :], torch.zeros(2, 3, 2, 4))
    assert torch.equal(corner[..., 2:, 2:], x[..., :2, :2])


def test_flip_mirrors_only_the_masked_images():
    x = torch.randn(5, 3, 4, 6)
    mask = torch.tensor([True, False, True, False, False])
    out = random_flip(x, mask)
    assert torch.equal(out[mask], x[mask].flip(-1)) and torch.equal(out[~mask], x[~mask])


def test_normalize_is_one_affine_op():
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    a, b = torch.full((3, 1, 1), 0.5), torch.randn(3, 4, 4)
    assert torch.equal(normalize(x, a, b), x.float() * a + b)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: draw_augmentation(-1, pad=1, flip=True, generator=torch.Generator()), "n must"),
        (lambda: draw_augmentation(2, pad=-1, flip=True, generator=torch.Generator()), "pad must"),
        (lambda: draw_augmentation(2, pad=1, flip=True, generator=0), "generator must"),
        (
            lambda: random_crop(torch.zeros(2, 1, 3, 3), torch.zeros(3), torch.zeros(3), pad=1),
            "oy and ox",
        ),
        (lambda: random_flip(torch.zeros(2, 1, 3, 3), torch.zeros(3, dtype=torch.bool)), "mask"),
        (lambda: random_flip(torch.zeros(3, 3), torch.zeros(3, dtype=torch.bool)), "NxCxHxW"),
    ],
)
def test_bad_arguments_are_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()
