"""CIFAR pickles load without running code: payloads are refused before they run."""

import pickle

import numpy as np
import pytest

from grownet.data import load_dataset
from grownet.data.readers import read_cifar_batches
from grownet.data.safe_pickle import load_pickle
from grownet.errors import DataFileError

# The official files as Python 2's cPickle wrote them (protocol 2, byte-string keys and data,
# numpy 1's module names): {'data': uint8 2x3 array, 'labels': [1, 2]}.
PY2_ARRAY = (
    b"cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00\x85U\x01b\x87Rq\x03"
    b"(K\x01K\x02K\x03\x86cnumpy\ndtype\nq\x04U\x02u1K\x00K\x01\x87Rq\x05"
    b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x06\x00\x01\x02\x03\x04\xfftb"
)
PY2_BATCH = b"\x80\x02}q\x00(U\x04dataq\x06" + PY2_ARRAY + b"U\x06labelsq\x07]q\x08(K\x01K\x02eu."


class _Reduce:
    """Pickles as a call of ``func(*args)``, the way every pickle payload works."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker):
    """(pickle bytes that would create ``marker``, the global the refusal must name)."""
    m = str(marker)
    return [
        (f"cos\nsystem\n(S'touch {m}'\ntR.".encode(), "os.system"),
        (f"cposix\nsystem\n(S'touch {m}'\ntR.".encode(), "posix.system"),
        (f"cbuiltins\nopen\n(S'{m}'\nS'w'\ntR.".encode(), "builtins.open"),
        (f"c__builtin__\neval\n(S'open({m!r}, \"w\")'\ntR.".encode(), "__builtin__.eval"),
        (pickle.dumps(_Reduce(open, m, "w"), protocol=4), "io.open"),
        # hidden inside an otherwise valid batch
        (
            pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "labels": _Reduce(open, m, "w")}),
            "io.open",
        ),
        (pickle.dumps({"data": _Reduce(np.load, m)}), "numpy.load"),
    ]


def test_the_payloads_are_live(tmp_path):
    # Plain pickle runs them: the refusals below are meaningful.
    marker = tmp_path / "marker"
    pickle.loads(_payloads(marker)[2][0])
    assert marker.exists()


@pytest.mark.parametrize("row", range(7))
def test_payload_is_refused_before_it_runs(tmp_path, row):
    marker = tmp_path / "marker"
    data, name = _payloads(marker)[row]
    path = tmp_path / "data_batch_1"
    path.write_bytes(data)
    with pytest.raises(DataFileError) as info:
        load_pickle(path)
    assert not marker.exists()
    message = str(info.value)
    assert message.startswith(f"{path}: holds a pickled {name!r}, not CIFAR data")
    assert "\n" not in message and "official release" in message


@pytest.mark.parametrize("name", ["data_batch_1", "test_batch", "batches.meta"])
def test_load_dataset_refuses_a_planted_cifar_file(fake_cifar10, name):
    marker = fake_cifar10 / "marker"
    path = fake_cifar10 / "cifar-10-batches-py" / name
    path.write_bytes(_payloads(marker)[0][0])
    with pytest.raises(DataFileError, match=f"^{path}: holds a pickled 'os.system'"):
        load_dataset("cifar10", data_dir=fake_cifar10)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_pickle_protocol_of_real_data_loads(tmp_path, protocol):
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    batch = {b"batch_label": b"x", "data": data, "labels": [3, 1], "filenames": ["a", "b"]}
    (tmp_path / "b").write_bytes(pickle.dumps(batch, protocol=protocol))
    x, y = read_cifar_batches(tmp_path, ["b"], label_key="labels")
    assert np.array_equal(x.numpy().reshape(2, -1), data) and y.tolist() == [3, 1]


def test_python2_files_load_as_torchvision_reads_them(tmp_path):
    (tmp_path / "b").write_bytes(PY2_BATCH)
    got = load_pickle(tmp_path / "b")
    want = pickle.loads(PY2_BATCH, encoding="latin1")
    assert got["labels"] == want["labels"] == [1, 2]
    assert got["data"].dtype == np.uint8 and np.array_equal(got["data"], want["data"])


def test_the_fake_cifar_folders_still_load(fake_cifar10, fake_cifar100):
    assert len(load_dataset("cifar10", data_dir=fake_cifar10).train) == 100
    assert load_dataset("cifar100", data_dir=fake_cifar100).classes[99] == "f99"
