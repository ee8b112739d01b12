"""Every user mistake, on every subcommand: exit 2, one line on stderr, no traceback, no file
written, changed or deleted.

``W`` in an argument stands for a folder of prepared files (a finished run, damaged graphs,
data and checkpoints, broken specs), which is also the working directory; every case checks
that nothing under it changed.
"""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from grownet.cli import main
from grownet.zoo import build

SPEC = (Path(__file__).parents[1] / "search" / "digits.toml").read_text()
DIGITS = ["--model", "convnet", "--dataset", "digits", "--quiet"]
# A finished run that the mistakes below try to change; later flags override these.
DONE = ["--name", "done", "--max-iter", "4", "--test-interval", "2", "--display-interval", "2"]
CUDA = torch.cuda.is_available()


def graph_file(path: Path, mutate) -> None:
    data = build("lenet2n", n=1).to_dict()
    mutate(data)
    path.write_text(json.dumps(data))


def idx(path: Path, shape: tuple[int, ...], body: int) -> None:
    """An IDX file whose header says ``shape`` but which holds only ``body`` bytes of data."""
    header = bytes([0, 0, 8, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape)
    path.write_bytes(header + bytes(body))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("world")
    assert main(["train", "--runs-dir", str(w / "runs"), *DIGITS, *DONE]) == 0
    broken = w / "runs" / "broken"
    shutil.copytree(w / "runs" / "done", broken)
    (broken / "checkpoint.pt").write_text("not a checkpoint")
    (w / "file.txt").write_text("a file, not a directory")
    (w / "page.html").write_text("<html>someone's own page</html>")
    graphs = w / "graphs"
    graphs.mkdir()
    (graphs / "empty.json").write_text("")
    (graphs / "binary.json").write_bytes(b"\x00\xff\xfe binary")
    (graphs / "nokeys.json").write_text('{"format": "grownet.netgraph"}')
    graph_file(graphs / "negative.json", lambda d: d["nodes"][1]["params"].update(out_channels=-3))
    graph_file(graphs / "typed.json", lambda d: d["nodes"][1].update(params="conv"))
    raw = w / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    idx(raw / "train-images-idx3-ubyte", (60000, 28, 28), 100)  # truncated
    idx(raw / "train-labels-idx1-ubyte", (60000,), 60000)
    idx(raw / "t10k-images-idx3-ubyte", (10000, 28, 28), 10000 * 784)
    idx(raw / "t10k-labels-idx1-ubyte", (10000,), 10000)
    (w / "empty").mkdir()
    specs = w / "specs"
    specs.mkdir()
    (specs / "lr.toml").write_text(SPEC.replace("base_lr = 0.05", "base_lr = -1.0"))
    (specs / "key.toml").write_text(SPEC + "\nwobble = 3\n")
    (specs / "toml.toml").write_text("name = [unclosed\n")
    (specs / "ratio.toml").write_text(SPEC.replace("ratios = [0.25, 0.5, 0.75]", "ratios = [1.5]"))
    (specs / "node.toml").write_text(SPEC.replace('"relu1_1", "relu2_1"', '"relu9_9"'))
    (specs / "name.toml").write_text(SPEC.replace('name = "digits"', 'name = "../escape"'))
    policy = SPEC.replace('lr_policy = "cosine"', 'lr_policy = "multistep"')
    (specs / "policy.toml").write_text(policy)
    (specs / "final.toml").write_text(SPEC + '\n[final]\nstarts = ["warm"]\n')
    (specs / "validate.toml").write_text(SPEC.replace("folds = 5", "fraction = 2.0"))
    (specs / "folds.toml").write_text(SPEC.replace("folds = 5", "folds = 1"))
    (specs / "many_folds.toml").write_text(SPEC.replace("folds = 5", "folds = 500"))
    (specs / "budget.toml").write_text(SPEC.replace("min_gain = 0.005", "iter_budget = -1"))
    (specs / "mode.toml").write_text(SPEC.replace("iters_per_ratio = 200", 'mode = "once"', 1))
    (w / "recipe.toml").write_text('name = "r"\n[train]\nmax_iter = 5\n')
    (w / "config.toml").write_text("max_iter = = 3\n")
    (w / "unknown.toml").write_text("max_iters = 3\n")
    # what is not grownet's: a user's folder among the runs, folders a link leads out to
    (w / "runs" / "mine").mkdir()
    (w / "runs" / "mine" / "notes.txt").write_text("the user's notes")
    (w / "outside").mkdir()
    (w / "outside" / "keep.txt").write_text("not in the runs folder")
    (w / "runs" / "out").symlink_to(w / "outside")
    torn = w / "runs" / "torn"
    shutil.copytree(w / "runs" / "done", torn)
    with (torn / "checkpoint.pt").open("r+b") as f:
        f.truncate(f.seek(0, 2) // 2)
    (w / "notes.json").write_text('{"the user": "s own JSON"}')
    (w / "model.pt").write_text("the user's own .pt")
    (w / "dir.json").mkdir()
    (w / "failing.py").write_text("import a_package_that_is_not_installed\n")
    (w / "raising.py").write_text("def net():\n    raise RuntimeError('boom')\n")
    (w / "needy.py").write_text("def net(width):\n    return None\n")
    fine = "from torch import nn\ndef net():\n    return nn.Sequential(nn.Linear(4, 2))\n"
    (w / "fine.py").write_text(fine)
    bomb = w / "bomb" / "train"
    for c in ("a", "b"):
        (bomb / c).mkdir(parents=True)
        huge_png(bomb / c / "0.png")
    return w


def huge_png(path: Path) -> None:
    """A PNG whose header claims 100,000 x 100,000 pixels (and holds none)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def snapshot(root: Path) -> dict[str, str]:
    """Every file's hash and every folder: a mistake may not even leave an empty folder."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file()
        else "folder"
        for p in sorted(root.rglob("*"))
    }


TRAIN = [
    # values that make no sense
    (["--max-iter", "0"], "max_iter must be >= 1"),
    (["--max-iter", "abc"], "invalid int value"),
    (["--threads", "-1"], "threads must be >= 1"),
    (["--display-interval", "0"], "display_interval must be >= 1"),
    (["--test-interval", "0"], "test_interval must be >= 1"),
    (["--batch-size", "0"], "batch_size must be >= 1"),
    (["--train-size", "0"], "train_size must be >= 1"),
    (["--base-lr", "0"], "base_lr must be a number > 0"),
    (["--base-lr", "nan"], "base_lr must be a number > 0"),
    (["--momentum", "-1"], "momentum must be >= 0"),
    (["--weight-decay", "-1"], "weight_decay must be >= 0"),
    (["--nesterov", "--momentum", "0"], "nesterov needs momentum"),
    (["--lr-policy", "multistep"], "multistep policy needs stepvalues"),
    (["--lr-policy", "multistep", "--stepvalues", "9", "3"], "stepvalues must increase"),
    (["--lr-policy", "step"], "step policy needs stepsize"),
    (["--lr-policy", "wobble"], "lr_policy must be one of"),
    (["--lr-policy", "inv", "--power", "-1"], "power must be >= 0"),
    (["--warmup", "-1"], "warmup must be >= 0"),
    (["--give-up-at-chance-after", "-1"], "give_up_at_chance_after must be >= 0"),
    # devices
    (["--device", "cuda:abc"], "device must be auto, cpu, cuda, cuda:N or mps"),
    (["--device", "tpu"], "device must be auto, cpu, cuda, cuda:N or mps"),
    pytest.param(
        ["--device", "cuda"],
        "no CUDA device is available",
        marks=pytest.mark.skipif(CUDA, reason="this machine has CUDA"),
    ),
    (["--device", "cuda:7"], "cuda:7"),
    (["--device", "mps"], "mps"),
    # names and places
    (["--name", "../x"], "leaves the runs directory"),
    (["--name", "/tmp/x"], "absolute path"),
    (["--runs-dir", "W/file.txt"], "file.txt"),
    # models and their options
    (["--model", "lenet9"], "unknown model 'lenet9'"),
    (["--model", "lenet2n", "--n", "2", "--depth", "3"], "has no option 'depth'"),
    (["--model", "convnet", "--widths", "abc"], "widths must be a non-empty list"),
    (["--model", "lenet2n", "--n", "-2"], "n must be an integer >= 1"),
    (["--model", "lenet2n", "--n"], "model option --n needs a value"),
    (["stray"], "unexpected argument 'stray'"),
    # data
    (["--dataset", "wobble"], "unknown dataset 'wobble'"),
    (["--dataset", "mnist", "--data-dir", "W/empty"], "MNIST not found in"),
    (["--dataset", "mnist", "--data-dir", "W/data"], "truncated"),
    # config files
    (["--config", "W/missing.toml"], "does not exist"),
    (["--config", "W/config.toml"], "is not valid TOML"),
    (["--config", "W/unknown.toml"], "unknown key 'max_iters'"),
    # an existing run is never destroyed or changed under it
    ([*DONE, "--no-resume"], "already holds a finished run"),
    ([*DONE, "--base-lr", "0.5"], "other settings that change results (base_lr"),
    ([*DONE, "--threads", "1"], "other settings that change results (threads"),
    ([*DONE, "--compile"], "other settings that change results (compile"),
    ([*DONE, "--max-iter", "2"], "is at iteration 4 already"),
    ([*DONE, "--max-iter", "8"], "pass --extend"),
    ([*DONE, "--max-iter", "8", "--lr-policy", "cosine", "--extend"], "lr_policy"),
    ([*DONE, "--name", "broken"], "not a grownet checkpoint"),
    ([*DONE, "--name", "torn"], "torn/checkpoint.pt"),
    # nothing of the user's is deleted, nor written outside the runs folder
    (["--name", "mine", "--overwrite"], "is not a grownet run"),
    (["--name", "out", "--overwrite"], "outside the runs directory"),
    (["--name", "out/sub"], "outside the runs directory"),
    (["--dataset", "imagefolder:W/bomb"], "0.png"),
]

OTHERS = [
    (["models", "extra"], "unrecognized arguments: extra"),
    (["wobble"], "invalid choice: 'wobble'"),
    (["graph"], "the following arguments are required: model"),
    (["graph", "resnet9"], "unknown model 'resnet9'"),
    (["graph", "lenet2n", "-o", "n"], "is not KEY=VALUE"),
    (["graph", "lenet2n", "-o", "n=-3"], "n must be an integer >= 1"),
    (["graph", "cifar_resnet", "-o", "depth=57"], "depth must be 6n + 2"),
    (["graph", "W/missing.json"], "does not exist"),
    (["graph", "W/graphs/empty.json"], "empty.json"),
    (["graph", "W/graphs/binary.json"], "binary.json"),
    (["graph", "W/graphs/nokeys.json"], "nokeys.json"),
    (["graph", "W/graphs/negative.json"], "negative.json"),
    (["graph", "W/graphs/typed.json"], "typed.json"),
    (["graph", "lenet2n", "-o", "n=1", "--json", "W/file.txt/g.json"], "file.txt"),
    (["reproduce", "nope"], "nope"),
    (["reproduce", "W/recipe.toml"], "recipe.toml"),
    (["reproduce", "dropin_mnist_lenet", "--case", "nope"], "has no case 'nope'"),
    (["reproduce", "dropin_mnist_lenet", "--max-iter", "0"], "max_iter must be >= 1"),
    (["reproduce", "dropin_mnist_lenet", "--device", "cuda:abc"], "device must be"),
    (["reproduce", "dropin_mnist_lenet", "--device", "cuda:7", "--runs-dir", "W/r"],
     "--device cuda:7"),
    (["reproduce", "dropin_cifar10", "--scale", "quick", "--data-dir", "W/empty", "--runs-dir",
      "W/r"], "dropin_cifar10: none of its 5 case(s) can run: missing cifar10"),
    (["search", "digits", "--name", "mine", "--overwrite"], "runs/mine"),
    (["search", "digits", "--name", "out/s"], "outside the runs directory"),
    (["import", "fine:net", "--input-shape", "4", "-o", "W/notes.json"], "notes.json"),
    (["import", "fine:net", "--input-shape", "4", "-o", "W/dir.json"], "dir.json"),
    (["import", "fine:net", "--input-shape", "4", "-o", "W/model.json"], "model.pt exists"),
    (["graph", "lenet2n", "-o", "n=1", "--json", "W/notes.json"], "is not a grownet graph"),
    (["import", "failing:net", "--input-shape", "4", "-o", "W/g.json"], "failing"),
    (["import", "raising:net", "--input-shape", "4", "-o", "W/g.json"], "boom"),
    (["import", "needy:net", "--input-shape", "4", "-o", "W/g.json"], "width"),
    (["search", "nope"], "nope"),
    (["search", "W/specs/lr.toml"], "base_lr must be a number > 0"),
    (["search", "W/specs/key.toml"], "unknown key 'wobble'"),
    (["search", "W/specs/toml.toml"], "is not valid TOML"),
    (["search", "W/specs/ratio.toml"], "ratios must be a non-empty list in (0, 1)"),
    (["search", "W/specs/node.toml"], "'relu9_9' is not a node"),
    (["search", "W/specs/name.toml"], "leaves the runs directory"),
    (["search", "W/specs/policy.toml"], "multistep policy needs stepvalues"),
    (["search", "W/specs/final.toml"], "starts must be distinct values of"),
    (["search", "W/specs/validate.toml"], "fraction must be in (0, 1), got 2.0"),
    (["search", "W/specs/folds.toml"], "folds must be 0 (a hold-out) or >= 2, got 1"),
    (["search", "W/specs/many_folds.toml"], "folds = 500 needs at least 500 samples"),
    (["search", "W/specs/budget.toml"], "iter_budget must be >= 0, got -1"),
    (["search", "W/specs/mode.toml"], "mode must be one of ('fine_tune', 'one_shot')"),
    (["search", "digits", "--workers", "0"], "--workers must be a whole number >= 1, got 0"),
    (["search", "digits", "--name", "../x"], "leaves the runs directory"),
    (["search", "digits", "--device", "cuda:abc"], "device must be"),
    (["search", "digits", "--device", "cuda:7"], "--device cuda:7"),
    (["search", "digits", "--name", "done"], "holds a training run, not a search"),
    (["study", "nope"], "nope"),
    (["study", "digits"], "has no [study] table"),
    (["study", "W/specs/toml.toml"], "is not valid TOML"),
    (["study", "digits_nas", "--workers", "0"], "--workers must be >= 1, got 0"),
    (["study", "digits_nas", "--trials", "0"], "--trials must be an integer >= 1, got 0"),
    (["study", "digits_nas", "--name", "../x"], "leaves the runs directory"),
    (["study", "digits_nas", "--name", "out/s"], "outside the runs directory"),
    (["study", "digits_nas", "--device", "cuda:abc"], "device must be"),
    (["study", "digits_nas", "--device", "cuda:7"], "--device cuda:7"),
    (["study", "digits_nas", "--storage", "sqlite:///x.db", "--workers", "2"],
     "SQLite is not for parallel writers"),
    (["study", "digits_nas", "--compare", "W/empty"], "no search_summary.json"),
    (["study", "digits_nas", "--storage", "postgresql+psycopg://u@127.0.0.1:1/x"],
     "cannot open it"),
    (["study", "digits_nas", "--name", "done"], "holds a run, not a study"),
    (["study", "digits_nas", "--storage", "W/file.txt/s.journal", "--workers", "2"],
     "--storage"),
    (["report", "W/nope"], "nope"),
    (["report", "W/runs/done", "-o", "W/runs/done/config.json"], "a report is an .html file"),
    (["report", "W/runs/done", "-o", "W/runs/done/x.html"], "only report.html is the report's"),
    (["report", "W/runs/done", "-o", "W/page.html"], "is not a grownet report"),
    (["report", "W/runs/done", "-o", "W/file.txt/r.html"], "file.txt"),
    (["export", "W/nope", "-o", "W/out"], "does not exist"),
    (["export", "W/runs/done", "-o", "W/file.txt"], "is a file, not a directory"),
    (["export", "W/runs/broken", "-o", "W/out"], "checkpoint.pt"),
    (["export", "W/graphs/negative.json", "-o", "W/out"], "negative.json"),
    (["bench", "executor", "--batch", "0"], "--batch 0"),
    (["bench", "executor", "--warmup", "-1"], "--warmup -1"),
    (["bench", "depth-dropout", "--iters", "0"], "--iters 0"),
    (["bench", "depth-dropout", "--rounds", "0"], "--rounds 0"),
    (["bench", "stochastic-depth", "--device", "cuda:abc"], "--device 'cuda:abc'"),
    (["bench", "executor", "--out", "W/file.txt"], "is a file, not a directory"),
    (["bench", "depth-dropout", "--depth", "7", "--out", "W/b"], "--depth 7: must be 6n+2"),
]


def check_one_line(argv: list[str], message: str, world: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(world)
    monkeypatch.delenv("GROWNET_DEBUG", raising=False)
    argv = [a.replace("W/", f"{world}/") for a in argv]
    before = snapshot(world)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("grownet: error: ") and "Traceback" not in err
    assert message in err, err
    assert snapshot(world) == before


@pytest.mark.parametrize(("argv", "message"), TRAIN)
def test_train_mistakes(argv, message, world, capsys, monkeypatch):
    argv = ["train", "--runs-dir", "W/runs", *DIGITS, *argv]
    check_one_line(argv, message, world, capsys, monkeypatch)


@pytest.mark.parametrize(("argv", "message"), OTHERS)
def test_other_mistakes(argv, message, world, capsys, monkeypatch):
    if argv[0] in ("search", "study"):
        argv = [*argv, "--runs-dir", "W/runs"]
    check_one_line(argv, message, world, capsys, monkeypatch)


def test_the_table_covers_every_subcommand():
    commands = {"train"} | {argv[0] for argv, _ in OTHERS}
    assert commands >= {"models", "graph", "train", "reproduce", "search", "study", "report",
                        "bench"}  # fmt: skip
    assert len(TRAIN) + len(OTHERS) >= 60


def test_debug_shows_the_traceback(world, monkeypatch):
    monkeypatch.chdir(world)
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        main(["train", "--max-iter", "0", "--debug"])
