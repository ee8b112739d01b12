"""Progress bars say which run they belong to, and workers' bars keep to their own lines."""

import pytest

from grownet.train.progress import WORKER_INDEX, Progress


@pytest.mark.parametrize(("worker", "shown"),
                         [(None, "stages/stage_1"), ("1", "[1] stages/stage_1")])  # fmt: skip
def test_a_bar_names_its_run_and_its_worker(worker, shown, capsys, monkeypatch):
    if worker is None:
        monkeypatch.delenv(WORKER_INDEX, raising=False)
    else:
        monkeypatch.setenv(WORKER_INDEX, worker)
    bar = Progress(total=10, name="stages/stage_1")
    bar.update(5, loss=0.5, accuracy=0.75)
    assert bar._bar.pos == (0 if worker is None else -int(worker))  # tqdm's line, 0 = first
    bar.close()
    err = capsys.readouterr().err
    assert shown + ":" in err
    if worker is None:  # kept when done (a worker's is cleared for its next run's)
        assert "test_acc=0.7500" in err


def test_quiet_draws_nothing(capsys):
    bar = Progress(total=10, name="x", quiet=True)
    bar.update(10, loss=0.1)
    bar.close()
    assert capsys.readouterr().err == ""
