"""The `grownet` command's graph subcommand and its one-line errors."""

import json

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
