"""Your own data: imagefolder:, npz:, pt:, csv: and scikit-learn's tables, on files written here."""

import builtins
import json

import numpy as np
import PIL.Image
import pytest
import torch
from PIL import Image

import grownet.data.imagefolder as imagefolder
from grownet.data import FolderSplit, Split, StreamLoader, load_dataset, make_loader
from grownet.data.encoding import Encoding, load_encoding
from grownet.data.names import parse_name


def _tree(root, *, subs=("train",), per_class=6, mode="RGB", classes=("cat", "dog")):
    rng = np.random.default_rng(0)
    for sub in subs:
        for c in classes:
            folder = root / sub / c
            folder.mkdir(parents=True)
            for i in range(per_class):
                h, w = int(rng.integers(10, 30)), int(rng.integers(10, 30))
                shape = (h, w) if mode == "L" else (h, w, 3)
                pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


# ----------------------------------------------------------------------------- names


def test_names_parse_with_typed_options_and_resolve_in_the_data_dir(tmp_path, monkeypatch):
    name = parse_name("imagefolder:flowers?size=48")
    assert (name.scheme, name.path, name.options) == ("imagefolder", "flowers", {"size": 48})
    assert parse_name("imagefolder:flowers").options == {"size": 32}
    assert parse_name("csv:t.csv?target=y").text == "csv:t.csv?target=y"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "flowers").mkdir(parents=True)
    assert name.resolve(tmp_path / "data") == tmp_path / "data" / "flowers"
    (tmp_path / "flowers").mkdir()  # the current directory comes first
    assert name.resolve(tmp_path / "data") == tmp_path / "flowers"


# ----------------------------------------------------------------------------- imagefolder


def test_image_tree_without_test_folder_holds_out_a_fixed_stratified_quarter(tmp_path):
    root = _tree(tmp_path / "tree", per_class=8)
    a = load_dataset(f"imagefolder:{root}?size=16", seed=0)
    b = load_dataset(f"imagefolder:{root}?size=16", seed=5, val_size=2)
    assert isinstance(a.train, Split) and a.train.x.dtype == torch.uint8
    assert a.in_shape == (3, 16, 16) and a.num_classes == 2
    assert (len(a.train), len(a.test), len(b.train), len(b.val)) == (12, 4, 10, 2)
    assert torch.equal(a.test.x, b.test.x)  # the test quarter does not move with the seed
    assert torch.bincount(a.test.y).tolist() == [2, 2]
    assert a.source["splits"] == {"test": "a fixed stratified 25% of train/"}
    # per-channel statistics of the training split, in [0, 1] units
    mean = a.train.x.double().mean((0, 2, 3)) / 255
    assert a.preprocess.describe()["mean"] == pytest.approx(mean.tolist(), abs=1e-6)


def test_val_folder_plays_the_test_set_unless_there_is_a_test_folder(tmp_path):
    root = _tree(tmp_path / "a", subs=("train", "val"), per_class=3)
    ds = load_dataset(f"imagefolder:{root}?size=8")
    assert (len(ds.train), len(ds.test), ds.val) == (6, 6, None)
    both = _tree(tmp_path / "b", subs=("train", "val", "test"), per_class=3)
    ds = load_dataset(f"imagefolder:{both}?size=8")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (6, 6, 6)
    with pytest.raises(ValueError, match="drop val_size"):
        load_dataset(f"imagefolder:{both}?size=8", val_size=2)
    # train/ and test/ without val/ (the layout the README documents)
    documented = _tree(tmp_path / "c", subs=("train", "test"), per_class=3)
    ds = load_dataset(f"imagefolder:{documented}?size=8", val_size=2)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (4, 2, 6)
    assert ds.source["splits"]["test"] == "test/"


def test_grayscale_tree_keeps_one_channel(tmp_path):
    root = _tree(tmp_path / "tree", mode="L")
    ds = load_dataset(f"imagefolder:{root}?size=12")
    assert ds.in_shape == (1, 12, 12) and ds.source["channels"] == 1


def test_in_memory_tree_opens_no_image_in_a_second_epoch(tmp_path, monkeypatch):
    root = _tree(tmp_path / "tree", per_class=6)
    opened = []
    real_open = PIL.Image.open
    monkeypatch.setattr(
        PIL.Image, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k)
    )
    ds = load_dataset(f"imagefolder:{root}?size=16")
    assert len(opened) >= 12  # decoded once, here
    opened.clear()
    loader = make_loader(ds.train, batch_size=3, preprocess=ds.preprocess, train=True)
    for _ in range(2 * len(loader)):  # two epochs
        x, _ = loader.next_batch()
    assert loader.state_dict()["epoch"] == 2 and x.shape == (3, 3, 16, 16)
    assert opened == []
    load_dataset(f"imagefolder:{root}?size=16")  # the next run of a search, same process
    assert len(opened) == 1  # only the first image's header, for the tree's channel count
    opened.clear()
    real_builtin_open = builtins.open
    monkeypatch.setattr(
        builtins, "open", lambda *a, **k: opened.append(a[0]) or real_builtin_open(*a, **k)
    )
    list(loader)  # a third epoch, watching every file Python opens
    assert not [p for p in opened if str(p).endswith(".png")]


def test_large_tree_streams_with_the_same_pixels_and_caches_its_statistics(tmp_path, monkeypatch):
    root = _tree(tmp_path / "tree", per_class=6)
    small = load_dataset(f"imagefolder:{root}?size=16", data_dir=tmp_path / "data")
    monkeypatch.setattr(imagefolder, "MEMORY_BYTES", 0)
    big = load_dataset(f"imagefolder:{root}?size=16", data_dir=tmp_path / "data")
    assert isinstance(big.train, FolderSplit) and big.train.channels == 3
    assert big.in_shape == (3, 16, 16) and big.source["in_memory"] is False
    assert big.preprocess.describe() == small.preprocess.describe()
    cache = tmp_path / "data" / ".grownet-cache" / "imagefolder-stats"
    assert [p.name for p in cache.iterdir()] == [big.source["stats_cache"].rsplit("/", 1)[1]]
    stream = make_loader(
        big.test, batch_size=4, preprocess=big.preprocess, train=False, num_workers=0
    )
    memory = make_loader(small.test, batch_size=4, preprocess=small.preprocess, train=False)
    assert isinstance(stream, StreamLoader)
    for (xs, ys), (xm, ym) in zip(stream, memory, strict=True):
        assert torch.equal(ys, ym) and torch.allclose(xs, xm, atol=1e-5)
    # a second load reads the statistics from the cache: no image is opened
    opened = []
    real_open = PIL.Image.open
    monkeypatch.setattr(
        PIL.Image, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k)
    )
    again = load_dataset(f"imagefolder:{root}?size=16", data_dir=tmp_path / "data")
    assert again.preprocess.describe() == big.preprocess.describe()
    assert len(opened) == 1  # the first training image's header: the tree's channel count


# ----------------------------------------------------------------------------- npz / pt


def test_npz_uint8_images_with_their_own_test_split(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(30, 2, 5, 5), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(30) % 3, x_test=x[:9], y_test=np.arange(9) % 3)
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert ds.in_shape == (2, 5, 5) and ds.num_classes == 3 and ds.train.x.dtype == torch.uint8
    assert (len(ds.train), len(ds.test)) == (30, 9)
    assert torch.equal(ds.train.x, torch.from_numpy(x))
    assert ds.preprocess.scale == pytest.approx(1 / 255) and ds.preprocess.std is not None


def test_pt_features_are_standardised_on_the_training_split(tmp_path):
    x = torch.randn(40, 3) * torch.tensor([1.0, 10.0, 100.0]) + 5
    torch.save({"x": x, "y": torch.arange(40) % 2}, tmp_path / "d.pt")
    ds = load_dataset(f"pt:{tmp_path / 'd.pt'}", val_size=6)
    assert ds.in_shape == (3,) and (len(ds.train), len(ds.val), len(ds.test)) == (24, 6, 10)
    assert (
        ds.train.x.mean(0).abs().max() < 1e-5
        and (ds.train.x.std(0, unbiased=False) - 1).abs().max() < 1e-4
    )
    assert ds.source["encoding"]["features"] == ["x0", "x1", "x2"]
    loader = make_loader(ds.train, batch_size=8, preprocess=ds.preprocess, train=True)
    xb, _ = loader.next_batch()
    assert xb.shape == (8, 3) and xb.dtype == torch.float32


def test_float_images_in_npz_are_standardised_per_channel(tmp_path):
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(20, 1, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(20) % 2)
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert ds.train.x.dtype == torch.float32 and ds.preprocess.scale == 1.0
    x, _ = make_loader(ds.train, batch_size=15, preprocess=ds.preprocess, train=False).batch_at(
        0, 0
    )
    assert abs(float(x.mean())) < 1e-5


# ----------------------------------------------------------------------------- csv


def _table(path, rows=40):
    lines = ["age,colour,score,label"]
    for i in range(rows):
        lines.append(
            f"{20 + i},{['red', 'green', 'blue'][i % 3]},{i * 0.5},{'yes' if i % 2 else 'no'}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_encodes_numbers_and_categories_and_maps_text_labels(tmp_path):
    ds = load_dataset(f"csv:{_table(tmp_path / 't.csv')}?target=label")
    enc = ds.source["encoding"]
    assert enc["classes"] == ["no", "yes"] and ds.num_classes == 2
    assert enc["features"] == ["age", "score", "colour=blue", "colour=green", "colour=red"]
    assert ds.in_shape == (5,) and (len(ds.train), len(ds.test)) == (30, 10)
    assert ds.source["classes"] == ["no", "yes"]
    assert json.loads(json.dumps(ds.source)) == ds.source


def test_csv_encoding_is_fitted_on_the_training_split_only(tmp_path):
    path = _table(tmp_path / "t.csv")
    ds = load_dataset(f"csv:{path}?target=label", val_size=8, train_size=12, seed=3)
    enc = Encoding.from_dict(ds.source["encoding"])
    # the training split's raw ages, recovered from its encoding, give the fitted mean exactly
    ages = ds.train.x[:, 0].double() * enc.std[0] + enc.mean[0]
    assert enc.mean[0] == pytest.approx(float(ages.mean()))
    assert enc.mean[0] != pytest.approx(20 + 39 / 2)  # not the whole file's mean
    assert ds.train.x[:, :2].mean(0).abs().max() < 1e-5  # standardised on train ...
    assert ds.test.x[:, :2].mean(0).abs().max() > 1e-3  # ... not on test


def test_csv_encoding_is_saved_with_the_run_and_encodes_new_rows(tmp_path):
    from grownet.train.config import TrainConfig
    from grownet.train.trainer import Trainer

    path = _table(tmp_path / "t.csv")
    name = f"csv:{path}?target=label"
    cfg = TrainConfig(
        model="mlp",
        model_options={"widths": [8]},
        dataset=name,
        max_iter=4,
        test_interval=4,
        batch_size=8,
        quiet=True,
        name="tab",
        runs_dir=str(tmp_path / "runs"),
    )
    trainer = Trainer(cfg)
    trainer.run()
    enc = load_encoding(tmp_path / "runs" / "tab")
    assert enc.features == ["age", "score", "colour=blue", "colour=green", "colour=red"]
    rows = [
        {"age": "23", "colour": "red", "score": "1.5"},
        {"age": 50, "colour": "pink", "score": 0},
    ]
    x = enc.encode_rows(rows)
    assert x.shape == (2, 5) and x[1, 2:].tolist() == [0.0, 0.0, 0.0]  # unseen colour: no column
    expected = trainer.dataset.train.x[trainer.dataset.train.x[:, 0] == x[0, 0]]
    assert len(expected) <= 1  # row 3 of the file, if it landed in train, encodes the same
    if len(expected):
        assert torch.allclose(expected[0], x[0])
    with torch.no_grad():
        assert trainer.net.eval()(x).shape == (2, 2)


def test_csv_integer_labels_sort_as_numbers(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,label\n" + "".join(f"{i},{[2, 10, 9][i % 3]}\n" for i in range(30)))
    ds = load_dataset(f"csv:{path}?target=label")
    assert ds.source["encoding"]["classes"] == ["2", "9", "10"]


# ----------------------------------------------------------------------------- sklearn tables


@pytest.mark.parametrize(
    ("name", "features", "classes", "sizes"),
    [("iris", 4, 3, (112, 38)), ("wine", 13, 3, (134, 44)), ("breast_cancer", 30, 2, (427, 142))],
)
def test_sklearn_tables_are_offline_with_a_fixed_test_split(name, features, classes, sizes):
    a, b = load_dataset(name, seed=0), load_dataset(name, seed=9)
    assert a.in_shape == (features,) and a.num_classes == classes
    assert (len(a.train), len(a.test)) == sizes
    assert torch.equal(a.test.x, b.test.x)
    assert a.source["encoding"]["numeric"] and a.source["preprocessing"]["scale"] == 1.0
