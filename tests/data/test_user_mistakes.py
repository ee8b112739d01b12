"""Every mistake in a user's own data is one line that names the file (or folder) and the fix."""

import numpy as np
import pytest
import torch
from PIL import Image

from grownet.cli import main
from grownet.data import load_dataset
from grownet.errors import UserError


def _tree(root, classes=("cat", "dog"), per_class=4, mode="RGB", sub="train"):
    for c in classes:
        folder = root / sub / c
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new(mode, (10, 12), color=40 * i).save(folder / f"{i}.png")
    return root


def _csv(path, text):
    path.write_text(text)
    return path


GOOD_ROWS = "".join(f"{i},{i % 3},{'ab'[i % 2]}\n" for i in range(12))


def mixed_channels(tmp):
    root = _tree(tmp / "tree")
    Image.new("L", (10, 12)).save(root / "train" / "dog" / "9-gray.png")
    return "imagefolder:{}", root, "9-gray.png"


def damaged_image(tmp):
    root = _tree(tmp / "tree")
    (root / "train" / "cat" / "5-broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return "imagefolder:{}", root, "5-broken.png"


def empty_class(tmp):
    root = _tree(tmp / "tree")
    (root / "train" / "bird").mkdir()
    return "imagefolder:{}", root, "bird"


def foreign_val_class(tmp):
    root = _tree(tmp / "tree")
    _tree(root, classes=("cat", "fox"), per_class=1, sub="val")
    return "imagefolder:{}", root, "val"


def _bytes(path):
    path.write_bytes(b"a,c\n\xff,1\n")
    return path


def npz(tmp, **arrays):
    path = tmp / "d.npz"
    np.savez(path, **arrays)
    return path


def pt(tmp, obj):
    path = tmp / "d.pt"
    torch.save(obj, path)
    return path


X = np.zeros((20, 3), dtype=np.float32)
Y = np.arange(20) % 2

CASES = {
    # name: (write files under tmp -> (name template, path, what the line must name), fix words)
    "missing folder": (lambda t: ("imagefolder:{}", t / "nowhere", "nowhere"), "train/<class>"),
    "folder without train/": (
        lambda t: ("imagefolder:{}", (t / "x").mkdir() or t / "x", "x"),
        "train/<class>",
    ),
    "one class only": (
        lambda t: ("imagefolder:{}", _tree(t / "tree", classes=("cat",)), "train"),
        "two or more",
    ),
    "mixed channel counts": (mixed_channels, "convert them all"),
    "damaged image": (damaged_image, "remove or replace it"),
    "class folder without images": (empty_class, "add some or remove the folder"),
    "val class not in train": (foreign_val_class, "not in train/"),
    "csv without the target column": (
        lambda t: ("csv:{}?target=label", _csv(t / "t.csv", "a,b,c\n" + GOOD_ROWS), "t.csv"),
        "?target=COLUMN",
    ),
    "csv with a NaN": (
        lambda t: ("csv:{}?target=c", _csv(t / "t.csv", "a,b,c\n1,NaN,x\n" + GOOD_ROWS), "t.csv"),
        "fill them in or drop those rows",
    ),
    "csv with an empty cell": (
        lambda t: ("csv:{}?target=c", _csv(t / "t.csv", "a,b,c\n1,,x\n" + GOOD_ROWS), "t.csv"),
        "line 2, column 'b'",
    ),
    "csv labels that are floats": (
        lambda t: ("csv:{}?target=b", _csv(t / "t.csv", "a,b,c\n1,0.5,x\n" + GOOD_ROWS), "t.csv"),
        "integer or text class labels",
    ),
    "csv with one class": (
        lambda t: ("csv:{}?target=c", _csv(t / "t.csv", "a,c\n" + "1,x\n" * 8), "t.csv"),
        "two or more",
    ),
    "csv row of the wrong length": (
        lambda t: ("csv:{}?target=c", _csv(t / "t.csv", "a,b,c\n1,2\n" + GOOD_ROWS), "t.csv"),
        "one cell per column",
    ),
    "csv not comma-separated": (
        lambda t: ("csv:{}?target=c", _csv(t / "t.csv", "a;b;c\n1;2;3\n"), "t.csv"),
        "save it with commas",
    ),
    "csv not UTF-8": (lambda t: ("csv:{}?target=c", _bytes(t / "t.csv"), "t.csv"), "UTF-8"),
    "csv missing": (lambda t: ("csv:{}?target=c", t / "none.csv", "none.csv"), "name a CSV file"),
    "npz labels that are floats": (
        lambda t: ("npz:{}", npz(t, x=X, y=Y.astype(np.float32)), "d.npz"),
        "astype(int)",
    ),
    "npz shapes that disagree": (
        lambda t: ("npz:{}", npz(t, x=X, y=Y[:15]), "d.npz"),
        "must match one to one",
    ),
    "npz test samples of another shape": (
        lambda t: ("npz:{}", npz(t, x=X, y=Y, x_test=X[:, :2], y_test=Y), "d.npz"),
        "must agree",
    ),
    "npz with NaN": (
        lambda t: ("npz:{}", npz(t, x=np.full((20, 3), np.nan), y=Y), "d.npz"),
        "fill in or drop",
    ),
    "npz of Python objects": (
        lambda t: ("npz:{}", npz(t, x=np.array([{}] * 20, dtype=object), y=Y), "d.npz"),
        "save numeric arrays",
    ),
    "npz without y": (lambda t: ("npz:{}", npz(t, x=X), "d.npz"), "expected arrays x and y"),
    "npz images without a channel axis": (
        lambda t: ("npz:{}", npz(t, x=np.zeros((20, 4, 4)), y=Y), "d.npz"),
        "[:, None]",
    ),
    "npz with one class": (
        lambda t: ("npz:{}", npz(t, x=X, y=np.zeros(20, dtype=int)), "d.npz"),
        "two or more",
    ),
    "npz that is no archive": (
        lambda t: ("npz:{}", (t / "d.npz").write_text("hello") and t / "d.npz", "d.npz"),
        "np.savez",
    ),
    "pt that needs pickle": (
        lambda t: ("pt:{}", pt(t, {"x": torch.zeros(20, 3), "y": slice(1)}), "d.pt"),
        "torch.save",
    ),
    "pt that is not a dict": (
        lambda t: ("pt:{}", pt(t, torch.zeros(3)), "d.pt"),
        "not a dict of tensors",
    ),
    "unknown scheme": (lambda t: ("cvs:{}", t / "t.csv", "cvs:"), "csv:"),
    "size that is not a number": (
        lambda t: ("imagefolder:{}?size=big", t, "size"),
        "whole number",
    ),
    "unknown option": (lambda t: ("npz:{}?target=y", t / "d.npz", "target"), "its options"),
    "csv without a target": (lambda t: ("csv:{}", t / "t.csv", "target"), "?target=COLUMN"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_mistake_is_one_line_naming_the_file_and_the_fix(tmp_path, case):
    write, fix = CASES[case]
    template, path, named = write(tmp_path)
    with pytest.raises(UserError) as caught:
        load_dataset(template.format(path), data_dir=tmp_path / "data")
    line = str(caught.value)
    assert "\n" not in line
    assert named in line, line
    assert fix in line, line


def test_the_command_line_prints_the_mistake_in_one_line_and_exits_2(tmp_path, capsys):
    table = _csv(tmp_path / "t.csv", "a,b,c\n" + GOOD_ROWS)
    argv = [
        "train",
        "--model",
        "mlp",
        "--dataset",
        f"csv:{table}?target=nope",
        "--max-iter",
        "1",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--name",
        "x",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("grownet: error: ") and "\n" not in err
    assert str(table) in err and "has no column 'nope'" in err
