"""BatchLoader: shapes, shuffling, reproducibility, exact resume, augmentation, evaluation."""

import pytest
import torch
import torch.nn.functional as F

from grownet.data import BatchLoader, Preprocess, Split, derive_seed, draw_augmentation

N, B = 50, 8
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def split():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (N, 3, 8, 8), dtype=torch.uint8, generator=g)
    return Split(x, torch.arange(N))  # the label is the sample's index: easy to track


AUGMENT = Preprocess(
    scale=1 / 255, mean=torch.full((3, 8, 8), 0.5, dtype=torch.float64), pad=2, flip=True
)
PLAIN = Preprocess(scale=1 / 255)


def loader(split, **kw):
    options = {"batch_size": B, "preprocess": AUGMENT, "train": True, "seed": 0}
    return BatchLoader(split, **{**options, **kw})


def take(ld, k):
    return [ld.next_batch() for _ in range(k)]


def same(a, b):
    return len(a) == len(b) and all(
        torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("device", DEVICES)
def test_batch_shape_dtype_and_device(split, device):
    x, y = loader(split, device=device).next_batch()
    assert (tuple(x.shape), x.dtype, y.dtype, x.device.type) == (
        (B, 3, 8, 8),
        torch.float32,
        torch.int64,
        device,
    )


@pytest.mark.parametrize(("drop_last", "batches", "seen"), [(True, 6, 48), (False, 7, 50)])
def test_each_epoch_is_a_permutation(split, drop_last, batches, seen):
    ld = loader(split, drop_last=drop_last)
    assert len(ld) == batches
    for _ in range(3):
        ys = torch.cat([y for _, y in ld])  # iter() in training: the rest of the epoch
        assert ys.numel() == seen and ys.unique().numel() == seen
    assert ld.state_dict() == {"epoch": 3, "position": 0}


def test_order_is_seeded_and_epochs_differ(split):
    a, b, c = loader(split, seed=1), loader(split, seed=1), loader(split, seed=2)
    ya, yb, yc = ([y for _, y in take(ld, 12)] for ld in (a, b, c))
    assert all(torch.equal(p, q) for p, q in zip(ya, yb, strict=True))
    assert not torch.equal(torch.cat(ya), torch.cat(yc))
    assert not torch.equal(torch.cat(ya[:6]), torch.cat(ya[6:]))  # a new order every epoch


def test_global_rng_untouched(split):
    before = torch.get_rng_state()
    take(loader(split), 10)
    list(loader(split, train=False))
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("first", [0, 5, 6, 7, 13])
@pytest.mark.parametrize("preprocess", [AUGMENT, PLAIN])
def test_exact_resume(split, first, preprocess):
    original = loader(split, preprocess=preprocess)
    take(original, first)
    state = original.state_dict()
    expected = take(original, 5)  # crosses an epoch boundary for most `first`
    resumed = loader(split, preprocess=preprocess)
    resumed.load_state_dict(dict(state))
    assert same(take(resumed, 5), expected)
    assert resumed.state_dict() == original.state_dict()


def test_flip_only_mirrors_whole_images(split):
    ld = loader(split, preprocess=Preprocess(scale=1 / 255, flip=True))
    x, y = ld.next_batch()
    raw = split.x[y].float() / 255
    flipped = torch.tensor([torch.allclose(x[i], raw[i].flip(-1)) for i in range(B)])
    kept = torch.tensor([torch.allclose(x[i], raw[i]) for i in range(B)])
    assert (flipped | kept).all() and flipped.any()


@pytest.mark.parametrize("batch_size", [8, 50, 64])
def test_eval_is_one_ordered_pass_without_augmentation(split, batch_size):
    ld = loader(split, train=False, batch_size=batch_size)
    batches = list(ld)
    assert len(batches) == len(ld) == -(-N // batch_size)
    x = torch.cat([b[0] for b in batches])
    assert torch.equal(torch.cat([b[1] for b in batches]), torch.arange(N))
    assert torch.allclose(x, split.x.float() / 255 - 0.5)  # normalised only: no crop, no flip
    assert same(batches, list(ld)) and ld.state_dict() == {"epoch": 0, "position": 0}


def test_ranks_take_disjoint_shards_of_one_permutation(split):
    ranks = [loader(split, rank=r, world_size=3, batch_size=4) for r in range(3)]
    assert [len(ld) for ld in ranks] == [4, 4, 4]  # 48 of 50 samples: 16 per rank, 4 batches
    single = loader(split, batch_size=4)
    for epoch in range(2):
        seen = [torch.cat([y for _, y in ld]) for ld in ranks]
        expected = single.order(epoch)[:48]
        for r in range(3):
            assert torch.equal(seen[r], expected[r::3])  # the label is the sample's index
    assert ranks[0].state_dict() == {"epoch": 2, "position": 0}


@pytest.mark.parametrize(("rank", "world_size"), [(0, 1), (1, 2)])
def test_training_batch_matches_a_per_image_reference(split, rank, world_size):
    ld = loader(split, seed=3, rank=rank, world_size=world_size)
    take(ld, 2)
    x, y = ld.next_batch()  # epoch 0, position 2
    raw = split.x[y].double() / 255 - 0.5
    # the loader's augmentation seed: batches numbered as if the ranks' were interleaved
    g = torch.Generator().manual_seed(derive_seed(3, 2, 0, 2 * world_size + rank))
    aug = draw_augmentation(B, pad=2, flip=True, generator=g)
    for i in range(B):
        oy, ox = int(aug.oy[i]), int(aug.ox[i])
        img = F.pad(raw[i], (2, 2, 2, 2))[:, oy : oy + 8, ox : ox + 8]
        img = img.flip(-1) if aug.flip[i] else img
        assert torch.allclose(x[i].double(), img, atol=1e-6)


def test_rank_resumes_exactly(split):
    original = loader(split, rank=1, world_size=2)
    take(original, 4)
    expected = take(original, 3)  # crosses into epoch 1 (3 batches per epoch per rank)
    resumed = loader(split, rank=1, world_size=2)
    resumed.load_state_dict({"epoch": 1, "position": 2})  # where expected[1] starts
    assert same(take(resumed, 2), expected[1:])


def test_eval_shards_cover_every_sample_once(split):
    ys = [
        torch.cat([y for _, y in loader(split, train=False, rank=r, world_size=3)])
        for r in range(3)
    ]
    assert [len(y) for y in ys] == [17, 17, 16]
    assert torch.equal(torch.cat(ys).sort().values, torch.arange(N))


def test_channels_last_and_float_input(split):
    x, _ = loader(split, channels_last=True).next_batch()
    assert x.is_contiguous(memory_format=torch.channels_last)
    floats = Split(split.x.float() / 255, split.y)
    x, _ = BatchLoader(
        floats, batch_size=4, preprocess=Preprocess(scale=1.0), train=False
    ).next_batch()
    assert torch.equal(x, floats.x[:4])


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 51}, "leaves no batch"),
        ({"train": 1}, "train must"),
        ({"seed": -1}, "seed"),
        ({"drop_last": "yes"}, "drop_last"),
        ({"preprocess": None}, "preprocess"),
        ({"channels_last": None}, "channels_last"),
        ({"world_size": 0}, "world_size must be an int >= 1, got 0"),
        ({"rank": 2, "world_size": 2}, r"rank must be < world_size \(2\), got 2"),
        ({"batch_size": 26, "world_size": 2}, "leaves no batch from 25 samples"),
    ],
)
def test_bad_options_are_rejected(split, kw, match):
    with pytest.raises(ValueError, match=match):
        loader(split, **kw)


@pytest.mark.parametrize(
    "state", [{"epoch": 0}, {"epoch": -1, "position": 0}, {"epoch": 0, "position": 6}, [0, 0]]
)
def test_bad_states_are_rejected(split, state):
    with pytest.raises(ValueError, match="state"):
        loader(split).load_state_dict(state)
