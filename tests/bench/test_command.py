"""``grownet bench`` refuses bad arguments up front: exit code 2, one line on stderr naming the
flag, the value and what is allowed, no traceback, and nothing written, before any timing."""

import json
import os

import pytest
import torch

from grownet.bench.args import bench_device, check_count
from grownet.cli import main
from grownet.errors import BadValueError, DeviceError

DEPTH = ["bench", "depth-dropout", "--depth", "20", "--device", "cpu"]
STOCHASTIC = ["bench", "stochastic-depth", "--depth", "20", "--device", "cpu"]
EXECUTOR = ["bench", "executor", "--depth", "20", "--device", "cpu"]
WIDENING = ["bench", "widening", "--depth", "8", "--device", "cpu"]
GPT = ["bench", "gpt", "--layers", "1", "--width", "16", "--heads", "2", "--context", "8",
       "--device", "cpu"]


@pytest.fixture
def no_cuda(monkeypatch):
    """Whatever this machine has, the benchmarks see no CUDA."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def refused(argv, capsys, tmp_path, monkeypatch) -> str:
    """Run the command in an empty directory; check the refusal and return its one line."""
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert out == ""  # no table, no progress: nothing ran
    assert sorted(tmp_path.rglob("*")) == before  # nothing written (not even runs/)
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        ([*DEPTH, "--batch", "0"], "--batch 0: must be an integer >= 1"),
        ([*DEPTH, "--iters", "0"], "--iters 0: must be an integer >= 1"),
        ([*DEPTH, "--rounds", "0"], "--rounds 0: must be an integer >= 1"),
        ([*DEPTH, "--warmup", "-1"], "--warmup -1: must be an integer >= 0"),
        ([*DEPTH, "--iters", "2", "--rounds", "5"], "--rounds 5: must be at most --iters (2)"),
        ([*DEPTH, "--ratios", "1.5"], "dropout ratios must be in (0, 1), got 1.5"),
        ([*STOCHASTIC, "--batch", "-3"], "--batch -3: must be an integer >= 1"),
        ([*STOCHASTIC, "--p-last", "0"], "must be in (0, 1), got 0.0"),
        ([*EXECUTOR, "--rounds", "0"], "--rounds 0: must be an integer >= 1"),
        ([*EXECUTOR, "--iters", "0"], "--iters 0: must be an integer >= 1"),
        ([*EXECUTOR, "--warmup", "-2"], "--warmup -2: must be an integer >= 0"),
        ([*WIDENING, "--q", "1.5"], "--q 1.5: must be in [0, 1]"),
        ([*WIDENING, "--width", "7"], "--width 7: must be an even number >= 2"),
        ([*WIDENING[:3], "9"], "--depth 9: must be 6n+2"),
        ([*DEPTH[:3], "7"], "--depth 7: must be 6n+2"),
        ([*STOCHASTIC[:3], "21"], "--depth 21: must be 6n+2"),
        ([*EXECUTOR[:3], "2"], "--depth 2: must be 6n+2"),
        ([*WIDENING, "--rounds", "0"], "--rounds 0: must be an integer >= 1"),
        ([*GPT, "--heads", "3"], "--heads 3: must divide --width 16"),
        ([*GPT, "--context", "0"], "--context 0: must be an integer >= 1"),
        ([*GPT, "--batch", "0"], "--batch 0: must be an integer >= 1"),
    ],
)
def test_bad_counts_are_refused_before_timing(argv, said, capsys, tmp_path, monkeypatch):
    line = refused([*argv, "--out", str(tmp_path / "out")], capsys, tmp_path, monkeypatch)
    assert line.startswith("grownet: error: ") and said in line


@pytest.mark.parametrize(
    ("device", "said"),
    [
        ("cuda", "--device cuda: no CUDA device is available here"),
        ("cuda:0", "--device cuda:0: no CUDA device is available here"),
        ("cuda:abc", "--device 'cuda:abc': not a device the benchmarks time on"),
        ("mps", "--device 'mps': not a device the benchmarks time on; use auto, cpu, cuda"),
        ("gpu", "--device 'gpu'"),
    ],
)
@pytest.mark.parametrize("bench", [DEPTH, EXECUTOR])
def test_missing_devices_are_refused(bench, device, said, no_cuda, capsys, tmp_path, monkeypatch):
    argv = [*bench, "--device", device, "--out", str(tmp_path / "out")]
    assert said in refused(argv, capsys, tmp_path, monkeypatch)


def test_output_that_is_a_file_is_refused(capsys, tmp_path, monkeypatch):
    (tmp_path / "taken").write_text("not a directory")
    line = refused([*DEPTH, "--out", str(tmp_path / "taken")], capsys, tmp_path, monkeypatch)
    assert f"--out {tmp_path / 'taken'}: is a file, not a directory" in line
    assert (tmp_path / "taken").read_text() == "not a directory"


def test_output_below_a_file_is_refused(capsys, tmp_path, monkeypatch):
    (tmp_path / "taken").write_text("")
    out = tmp_path / "taken" / "bench"
    line = refused([*EXECUTOR, "--out", str(out)], capsys, tmp_path, monkeypatch)
    assert f"--out {out}: cannot create the directory" in line


def test_unwritable_output_is_refused(capsys, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user (root?) writes into read-only directories")
        line = refused([*DEPTH, "--out", str(locked)], capsys, tmp_path, monkeypatch)
        assert f"--out {locked}: cannot write into the directory" in line
        assert list(locked.iterdir()) == []  # the trial file is gone too
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_count_check_names_flag_and_value(value):
    with pytest.raises(BadValueError, match=f"--iters {value!r}: must be an integer >= 1"):
        check_count("--iters", value, low=1)


def test_device_errors_are_value_errors_for_the_command_line(no_cuda):
    assert bench_device("auto") == "cpu"
    with pytest.raises(DeviceError) as err:
        bench_device("cuda:1")
    assert isinstance(err.value, ValueError)


def test_directory_refusing_files_is_refused(capsys, tmp_path, monkeypatch):
    """The write check itself, where running as root makes chmod no obstacle."""

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("grownet.files.tempfile.NamedTemporaryFile", denied)
    out = tmp_path / "out"
    out.mkdir()
    line = refused([*DEPTH, "--out", str(out)], capsys, tmp_path, monkeypatch)
    assert line.endswith(f"--out {out}: cannot write into the directory (Permission denied)")


def test_widening_bench_runs_and_reports_the_overhead(capsys, tmp_path):
    argv = [*WIDENING, "--width", "4", "--batch", "4", "--rounds", "2", "--iters", "1",
            "--warmup", "0", "--out", str(tmp_path / "w")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "mid-widening (q = 0.5" in out and "mixing overhead" in out
    result = json.loads((tmp_path / "w" / "bench.json").read_text())
    assert result["max_output_gap"] < 1e-5 and len(result["samples_ms"]["mixing"]) == 2
    assert result["within_budget"] == (result["overhead"] <= 0.05)


def test_gpt_bench_compares_with_a_hand_written_module(capsys, tmp_path):
    argv = [*GPT, "--batch", "2", "--rounds", "2", "--iters", "1", "--warmup", "0",
            "--out", str(tmp_path / "g")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "tokens/s" in out and "speed graph/hand" in out and "mid-DropIn" in out
    result = json.loads((tmp_path / "g" / "bench.json").read_text())
    assert result["max_output_gap"] < 1e-5 and len(result["samples_ms"]["hand"]) == 2
    assert result["speed"] == pytest.approx(result["hand_ms"] / result["graph_ms"])
