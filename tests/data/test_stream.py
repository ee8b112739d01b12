"""ImageNet's code path: an ImageFolder tree of small PNGs, streamed by StreamLoader."""

import dataclasses

import pytest
import torch

from grownet.data import DatasetMissing, StreamLoader, load_dataset, make_loader


@pytest.fixture
def imagenet(fake_imagenet):
    ds = load_dataset("imagenet", data_dir=fake_imagenet)
    # small crops keep the test fast; the geometry code is the same as for 224
    ds.preprocess = dataclasses.replace(ds.preprocess, crop=16, resize=20)
    return ds


def stream(ds, **kw):
    options = {
        "batch_size": 4,
        "preprocess": ds.preprocess,
        "train": True,
        "seed": 0,
        "num_workers": 0,
    }
    return make_loader(ds.train, **{**options, **kw})


def test_folder_dataset_lists_files_and_classes(fake_imagenet):
    ds = load_dataset("imagenet", data_dir=fake_imagenet, val_size=2)
    assert ds.classes == ("cat", "dog") and ds.num_classes == 2 and ds.in_shape == (3, 224, 224)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (10, 2, 4)
    assert sorted(ds.val.y.tolist()) == [0, 1]
    caffe = load_dataset("imagenet", data_dir=fake_imagenet, preprocessing="caffe")
    assert caffe.in_shape == (3, 227, 227) and caffe.preprocess.warp


def test_stream_batches_shapes_and_normalisation(imagenet):
    ld = stream(imagenet)
    assert isinstance(ld, StreamLoader) and len(ld) == 3
    x, y = ld.next_batch()
    assert (tuple(x.shape), x.dtype, y.dtype) == ((4, 3, 16, 16), torch.float32, torch.int64)
    assert x.min() > -2.2 and x.max() < 2.7  # ImageNet mean/std applied


def test_stream_exact_resume_and_worker_independence(imagenet):
    before = torch.get_rng_state()
    original = stream(imagenet)
    for _ in range(2):
        original.next_batch()
    state = original.state_dict()
    expected = [original.next_batch() for _ in range(3)]  # crosses into epoch 1
    resumed = stream(imagenet, num_workers=2)
    resumed.next_batch()  # leaves prefetched work in the workers...
    resumed.load_state_dict(state)  # ...which a mid-epoch restore must discard
    got = [resumed.next_batch() for _ in range(3)]
    for (x1, y1), (x2, y2) in zip(got, expected, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert torch.equal(before, torch.get_rng_state())


def test_stream_ranks_take_disjoint_shards(imagenet):
    ranks = [stream(imagenet, batch_size=2, rank=r, world_size=5) for r in range(5)]
    assert [len(ld) for ld in ranks] == [1] * 5  # 10 of 12 images: 2 per rank
    # an image keeps its place in the epoch's order, so its seed: the crops of one process
    x_all, y_all = stream(imagenet, batch_size=10).next_batch()
    for r, ld in enumerate(ranks):
        x, y = ld.next_batch()
        assert torch.equal(x, x_all[r::5]) and torch.equal(y, y_all[r::5])


def test_stream_eval_is_one_ordered_pass(imagenet):
    ld = make_loader(
        imagenet.test, batch_size=3, preprocess=imagenet.preprocess, train=False, num_workers=0
    )
    batches = list(ld)
    assert [len(y) for _, y in batches] == [3, 1]
    assert torch.cat([y for _, y in batches]).tolist() == imagenet.test.y.tolist()
    again = list(ld)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))


def test_missing_imagenet_explains_it_cannot_be_downloaded(tmp_path):
    with pytest.raises(DatasetMissing, match="cannot be downloaded automatically") as info:
        load_dataset("imagenet", data_dir=tmp_path, download=True)
    assert "\n" not in str(info.value) and str(tmp_path / "imagenet") in str(info.value)
