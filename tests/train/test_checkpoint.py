"""Checkpoints: a round trip, one-line refusals of foreign files, and saves that never tear."""

import io
import pickle

import pytest
import torch

from grownet.errors import DataFileError
from grownet.train import checkpoint


class _Payload:
    """Unpickling this would create ``marker``: what a planted checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _save(path, **extra):
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    checkpoint.save(
        path, model=model, optimizer=optimizer, iteration=7, loader_state={"epoch": 1},
        config={"lr": 0.1}, graph={"nodes": []}, extra=extra,
    )  # fmt: skip


def _torch_bytes(obj, **kwargs) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)
    return buffer.getvalue()


def test_round_trip_and_no_temporary_file_left(tmp_path):
    path = tmp_path / "checkpoint.pt"
    _save(path, step="a")
    _save(path, step="b")  # replaces the first one
    state = checkpoint.load(path)
    assert (state["iteration"], state["config"], state["extra"]) == (7, {"lr": 0.1}, {"step": "b"})
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    _save(path, step="old")

    def crash(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        _save(path, step="new")
    monkeypatch.undo()
    assert checkpoint.load(path)["extra"] == {"step": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def _truncated(tmp_path) -> bytes:
    _save(tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    return data[: len(data) // 2]


# (file content, or a function of tmp_path giving it; expected problem after "not a grownet
# checkpoint (")
FOREIGN = [
    (b"", "EOFError"),
    (b"hello, I am text", "KeyError"),
    (_truncated, "RuntimeError: PytorchStreamReader failed"),
    (lambda d: pickle.dumps(_Payload(d / "marker")), "UnpicklingError: Unsupported operand"),
    (lambda d: _torch_bytes({"x": _Payload(d / "marker")}), "UnpicklingError: Unsupported global"),
    (lambda d: _torch_bytes({"weights": torch.zeros(2)}), "format None"),
    (lambda d: _torch_bytes(torch.zeros(2)), "format 'Tensor'"),
    (lambda d: _torch_bytes({"format": checkpoint.FORMAT}), "bad 'config'"),
    (lambda d: _torch_bytes({"a": 1}, _use_new_zipfile_serialization=False)[:30], "struct.error"),
]


@pytest.mark.parametrize(("content", "problem"), FOREIGN)
def test_a_foreign_file_is_one_line_and_runs_nothing(tmp_path, content, problem):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content(tmp_path) if callable(content) else content)
    with pytest.raises(DataFileError) as info:
        checkpoint.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a grownet checkpoint ({problem}")
    assert "\n" not in message and message.endswith("start the run afresh")
    assert not (tmp_path / "marker").exists()


def test_a_resumed_run_removes_what_a_save_killed_mid_write_left(tmp_path):
    from grownet.train.config import TrainConfig
    from grownet.train.trainer import Trainer

    config = TrainConfig.from_dict({"name": "run", "runs_dir": str(tmp_path), "model": "convnet",
                                    "dataset": "digits", "max_iter": 10, "test_interval": 10,
                                    "display_interval": 10, "checkpoint_interval": 10,
                                    "quiet": True, "threads": 1})  # fmt: skip
    Trainer(config).run()
    run = tmp_path / "run"
    # a torn save (atomic_save's temporary name) and files grownet did not write
    planted = [".checkpoint.pt.a1b2_c3d.tmp", ".checkpoint.pt.notours.tmp", "checkpoint.pt.tmp"]
    for name in planted:
        (run / name).write_bytes(b"half a checkpoint")
    assert Trainer(config).run(resume=True).iterations == 10
    assert sorted(p.name for p in run.glob("*.tmp")) == sorted(planted[1:])
