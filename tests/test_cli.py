"""The `grownet` command's graph subcommand and its one-line errors."""

import json
import subprocess
import sys

import pytest

from grownet.cli import main


def test_graph_writes_json_into_new_directories(tmp_path, capsys):
    out = tmp_path / "a" / "b" / "g.json"
    assert main(["graph", "resnet20", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["format"] == "grownet.netgraph"
    assert "parameters  269,722" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["graph", "resnet9"], "unknown model 'resnet9'"),
        (["graph", "lenet2n", "-o", "n"], "is not KEY=VALUE"),
        (["graph", "missing.json"], "graph file missing.json does not exist"),
    ],
)
def test_graph_mistakes_are_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["search", "--help"],
                                  ["import", "--help"], ["export", "--help"], ["bench", "--help"]])
def test_help_starts_without_torch(argv):
    # torch takes seconds to import: help must not wait for it
    code = (f"import sys; from grownet.cli import main; code = main({argv!r}); "
            "print(code, 'torch' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stderr.split()[-2:] == ["0", "False"], done.stderr
    assert "usage: grownet" in done.stdout


def test_a_closed_pipe_is_not_an_error():
    # the reader is gone before the first write (`grownet models | head -0`)
    proc = subprocess.Popen([sys.executable, "-m", "grownet.cli", "models"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == "", err


def test_graph_package_exports_the_executor():
    from grownet.graph import GraphNet, NetGraph
    from grownet.graph.executor import GraphNet as Executor

    assert GraphNet is Executor and NetGraph.__name__ == "NetGraph"


def test_import_and_graph_replace_only_their_own_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nets.py").write_text("from torch import nn\ndef net():\n"
                                      "    return nn.Sequential(nn.Linear(4, 2))\n")  # fmt: skip
    argv = ["import", "nets:net", "--input-shape", "4", "-o", "out/g.json"]
    assert main(argv) == 0 and main(argv) == 0  # the second run replaces the first's pair
    assert main(["graph", "lenet2n", "-o", "n=1", "--json", "out/g.json"]) == 0
    (tmp_path / "out" / "g.pt").write_text("now the user's own file")
    assert main(argv) == 2
    assert "g.pt exists and is not weights grownet imported" in capsys.readouterr().err
