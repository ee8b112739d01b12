"""Text datasets: Tiny Shakespeare, ``text:PATH``, windows, the text loader, and the mistakes."""

import json

import pytest
import torch

from grownet.data import (
    DATASETS,
    DatasetMissing,
    TextLoader,
    TextSplit,
    Vocabulary,
    load_dataset,
    make_loader,
    recipe,
)
from grownet.data.names import parse_name
from grownet.data.text import split_bounds, tokenize
from grownet.errors import DataFileError, UserError

IDENTITY = recipe("text", "paper")
# 400 characters (466 bytes): five of its symbols take two or three bytes in UTF-8
SAMPLE = "Où est le café? Ça va — très bien.\n" * 11 + "fin.\n" * 3


def write(tmp_path, text=SAMPLE, name="t.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def loader(split, **kw):
    options = {"batch_size": 5, "preprocess": IDENTITY, "train": True, "seed": 3}
    return TextLoader(split, **{**options, **kw})


def starts(ld, epoch):
    """Training window starts of ``epoch`` (the tokens are their own positions: x[:, 0])."""
    return torch.cat([ld.batch_at(epoch, p)[0][:, 0] for p in range(len(ld))])


COUNTING = TextSplit(torch.arange(50), context=4)  # token i is i: a window names its start


# ----------------------------------------------------------------------------- Tiny Shakespeare


def test_tinyshakespeare(shakespeare_dir):
    ds = load_dataset("tinyshakespeare", data_dir=shakespeare_dir)
    text = (shakespeare_dir / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    info, meta = DATASETS["tinyshakespeare"], ds.source["text"]
    assert (ds.num_classes, ds.in_shape) == (info.num_classes, info.in_shape) == (65, (64,))
    assert (meta["tokens"], meta["vocabulary_size"], meta["level"]) == (1_115_394, 65, "char")
    assert meta["vocabulary"] == "".join(sorted(set(text))) == "".join(ds.classes)
    assert meta["boundaries"] == {
        "train": [0, 1_003_854],
        "val": [1_003_854, 1_059_624],
        "test": [1_059_624, 1_115_394],
    }
    assert ds.source["sizes"] == {"train": 1_003_790, "val": 55_706, "test": 55_706}
    x, y = ds.train.windows(torch.tensor([0]))
    vocab = Vocabulary("char", meta["vocabulary"])
    assert vocab.decode(x[0]) == text[:64] and vocab.decode(y[0]) == text[1:65]
    assert torch.equal(x[0, 1:], y[0, :-1])
    assert vocab.decode(ds.test.tokens) == text[1_059_624:]
    json.dumps(ds.source)  # a run's dataset.json


def test_tinyshakespeare_missing_names_the_file(tmp_path):
    with pytest.raises(DatasetMissing) as err:
        load_dataset("tinyshakespeare", data_dir=tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "tinyshakespeare") in message
    assert "input.txt" in message and "char-rnn" in message


# ----------------------------------------------------------------------------- text:PATH


def test_char_level_multibyte(tmp_path):
    path = write(tmp_path)
    ds = load_dataset(f"text:{path}?context=8")
    alphabet = "".join(sorted(set(SAMPLE)))
    assert ds.name == f"text:{path}?context=8" and ds.in_shape == (8,)
    assert ds.num_classes == len(alphabet) and ds.classes == tuple(alphabet)
    a, b = split_bounds(len(SAMPLE))
    assert ds.source["text"]["boundaries"]["val"] == [a, b] and len(ds.val) == b - a - 8
    vocab = Vocabulary("char", ds.source["text"]["vocabulary"])
    whole = torch.cat([ds.train.tokens, ds.val.tokens, ds.test.tokens])
    assert vocab.decode(whole) == SAMPLE
    assert vocab.decode(ds.train.windows(torch.tensor([0]))[0][0]) == SAMPLE[:8]
    json.dumps(ds.source)


def test_byte_level(tmp_path):
    path = write(tmp_path)
    ds = load_dataset(f"text:{path}?level=byte&context=16")
    data = SAMPLE.encode("utf-8")
    assert (ds.num_classes, ds.in_shape, len(ds.classes), ds.classes[10]) == (256, (16,), 256, "0a")
    assert ds.source["text"]["tokens"] == len(data) > len(SAMPLE)
    assert "vocabulary" not in ds.source["text"]
    whole = torch.cat([ds.train.tokens, ds.val.tokens, ds.test.tokens])
    assert bytes(whole.tolist()) == data
    assert Vocabulary("byte").decode(ds.train.tokens[:3]) == "Où"


@pytest.mark.parametrize(
    ("name", "options", "canonical"),
    [
        ("text:a.txt", {"context": 64, "level": "char"}, "text:a.txt"),
        ("text:a.txt?context=64&level=char", {"context": 64, "level": "char"}, "text:a.txt"),
        ("text:a.txt?level=BYTE&context=256", {"context": 256, "level": "byte"},
         "text:a.txt?context=256&level=byte"),
    ],
)  # fmt: skip
def test_scheme_options(name, options, canonical):
    parsed = parse_name(name)
    assert (parsed.options, parsed.text) == (options, canonical)


def test_train_size_is_the_first_windows(tmp_path):
    ds = load_dataset(f"text:{write(tmp_path)}?context=8", train_size=10)
    full = load_dataset(f"text:{write(tmp_path)}?context=8")
    assert len(ds.train) == 10 and torch.equal(ds.train.tokens, full.train.tokens[:18])
    assert ds.source["sizes"]["train"] == 10 and len(ds.val) == len(full.val)


def test_tokenize_and_vocabulary_round_trip():
    ids, vocab = tokenize("ça ça!".encode(), "char")
    assert vocab.symbols == " !aç" and ids.tolist() == [3, 2, 0, 3, 2, 1]
    assert vocab.encode("ça").tolist() == [3, 2] and vocab.decode(ids) == "ça ça!"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        vocab.encode("z")


# ----------------------------------------------------------------------------- windows, loader


def test_windows_and_counts():
    split = TextSplit(torch.arange(10), context=3)
    x, y = split.windows(torch.tensor([0, 6]))
    assert x.tolist() == [[0, 1, 2], [6, 7, 8]] and y.tolist() == [[1, 2, 3], [7, 8, 9]]
    assert (len(split), split.eval_windows, split.in_shape) == (7, 3, (3,))
    assert len(split.head(2)) == 2 and split.head(2).tokens.tolist() == [0, 1, 2, 3, 4]


def test_make_loader_batches():
    ld = make_loader(COUNTING, batch_size=4, preprocess=IDENTITY, train=True)
    x, y = ld.next_batch()
    assert isinstance(ld, TextLoader)
    assert (tuple(x.shape), tuple(y.shape)) == ((4, 4), (4, 4))
    assert x.dtype == y.dtype == torch.int64
    assert torch.equal(y, x + 1)  # y is x shifted by one token


def test_each_epoch_is_a_seeded_permutation_of_all_starts():
    ld = loader(COUNTING, drop_last=False)
    epochs = [starts(ld, e) for e in range(2)]
    for s in epochs:
        assert sorted(s.tolist()) == list(range(len(COUNTING)))
    assert not torch.equal(epochs[0], epochs[1])
    assert torch.equal(epochs[0], starts(loader(COUNTING, drop_last=False), 0))


def test_exact_resume_mid_epoch():
    ld = loader(COUNTING)
    for _ in range(len(ld) + 3):  # into the second epoch
        ld.next_batch()
    state = ld.state_dict()
    ahead = [ld.next_batch() for _ in range(len(ld))]
    resumed = loader(COUNTING)
    resumed.load_state_dict(state)
    again = [resumed.next_batch() for _ in range(len(ld))]
    assert state == {"epoch": 1, "position": 3}
    for (x1, y1), (x2, y2) in zip(ahead, again, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_evaluation_reads_disjoint_windows_in_order():
    ld = loader(COUNTING, train=False, batch_size=5)
    batches = list(ld)
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x[:, 0].tolist() == list(range(0, 48, 4))  # (50 - 1) // 4 = 12 windows
    assert y.flatten().tolist() == list(range(1, 49))  # every token but a short tail, once
    assert [len(b[1]) for b in batches] == [5, 5, 2]
    assert ld.state_dict() == {"epoch": 0, "position": 0}  # evaluation does not move the stream
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, list(ld), strict=True))


def test_ranks_take_disjoint_shards():
    train = [starts(loader(COUNTING, rank=r, world_size=3, batch_size=3), 0) for r in range(3)]
    assert len({len(s) for s in train}) == 1
    seen = torch.cat(train).tolist()
    assert len(seen) == len(set(seen)) == 45  # 46 starts, 45 split evenly: 5 batches of 3 each
    evals = [loader(COUNTING, train=False, rank=r, world_size=3) for r in range(3)]
    firsts = sorted(int(x[0]) for ld in evals for xb, _ in ld for x in xb)
    assert firsts == list(range(0, 48, 4))


# ----------------------------------------------------------------------------- mistakes


def _one_line(err, *words):
    message = str(err.value)
    assert "\n" not in message, message
    for w in words:
        assert w in message, (w, message)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("?level=word", ["level must be char or byte", "'word'"]),
        ("?context=0", ["context must be in [1, 65536]", "got 0"]),
        ("?context=70000", ["context must be in [1, 65536]", "got 70000"]),
        ("?context=ten", ["context must be a whole number", "'ten'"]),
        ("?size=3", ["no option 'size'", "context, level"]),
    ],
)
def test_bad_options_are_one_line(tmp_path, query, words):
    with pytest.raises(UserError) as err:
        load_dataset(f"text:{write(tmp_path)}{query}")
    _one_line(err, *words)


@pytest.mark.parametrize(
    ("content", "query", "words"),
    [
        (b"caf\xe9 " * 100, "", ["t.txt", "not UTF-8", "level=byte"]),
        (b"", "?level=byte", ["t.txt", "is empty"]),
        (b"x" * 200, "?context=16", ["t.txt", "200 char tokens", "180/10/10", "at least 17"]),
    ],
)
def test_bad_files_are_one_line(tmp_path, content, query, words):
    with pytest.raises(DataFileError) as err:
        load_dataset(f"text:{write(tmp_path, content)}{query}")
    _one_line(err, *words)


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(DataFileError) as err:
        load_dataset(f"text:{tmp_path / 'none.txt'}")
    _one_line(err, "none.txt", "does not exist")


@pytest.mark.parametrize(
    ("options", "words"),
    [({"val_size": 100}, ["drop val_size 100", "90/5/5"]), ({"folds": 5}, ["drop folds 5"])],
)
def test_own_validation_split_refuses_val_size_and_folds(tmp_path, options, words):
    with pytest.raises(UserError) as err:
        load_dataset(f"text:{write(tmp_path)}?context=8", **options)
    _one_line(err, *words)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: TextSplit(torch.arange(4.0), 2), ["1-D int64", "float32"]),
        (lambda: TextSplit(torch.arange(4), 0), ["context must be an int >= 1", "got 0"]),
        (lambda: TextSplit(torch.arange(4), 4), ["at least context + 1 = 5", "got 4"]),
        (lambda: COUNTING.head(47), ["windows must be an int in [1, 46]", "got 47"]),
        (lambda: loader(COUNTING, preprocess=recipe("mnist", "paper")), ["identity"]),
        (lambda: Vocabulary("word"), ["level must be one of", "'word'"]),
    ],
)
def test_bad_arguments_are_one_line(make, words):
    with pytest.raises(ValueError) as err:
        make()
    _one_line(err, *words)
