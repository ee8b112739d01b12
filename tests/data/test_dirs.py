import pickle
from pathlib import Path

import pytest

from grownet.data import DatasetMissing, resolve_data_dir
from grownet.data.dirs import missing_files


@pytest.mark.parametrize(
    ("explicit", "env", "xdg", "expected"),
    [
        ("/a", "/b", "/c", "/a"),
        (None, "/b", "/c", "/b"),
        (None, "", "/c", "/c/grownet/data"),
        (Path("/p"), None, None, "/p"),
    ],
)
def test_resolve_data_dir_order(monkeypatch, explicit, env, xdg, expected):
    for var, value in (("GROWNET_DATA", env), ("XDG_CACHE_HOME", xdg)):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, value)
    assert resolve_data_dir(explicit) == Path(expected)


def test_resolve_data_dir_falls_back_to_home_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_dir() == tmp_path / ".cache" / "grownet" / "data"


@pytest.mark.parametrize("bad", ["", "   ", 3])
def test_resolve_data_dir_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="data_dir"):
        resolve_data_dir(bad)


def test_dataset_missing_is_one_line_and_pickles():
    err = DatasetMissing("MNIST", Path("/x/MNIST/raw"), ["a|a.gz", "b"])
    assert isinstance(err, FileNotFoundError)
    assert str(err) == (
        "MNIST not found in /x/MNIST/raw: expected a(.gz), b; "
        "place the files there or run with --download"
    )
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err) and copy.directory == err.directory


def test_missing_files_accepts_either_form(tmp_path):
    (tmp_path / "a.gz").write_bytes(b"")
    assert missing_files(tmp_path, ["a|a.gz", "b|b.gz"]) == ["b|b.gz"]
