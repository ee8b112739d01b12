"""A growth search on the user's own nn.Module (an `import:MODULE:CALLABLE` base)."""

import json
import sys

from grownet.cli import main

NET = '''
import torch.nn as nn


class Residual(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)

    def forward(self, x):
        return (self.bn(self.conv(x)) + x).relu()


def small_cnn(num_classes=10):
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        Residual(16), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes),
    )
'''

SPEC = """
name = "mine"
dataset = "digits"
[base]
model = "import:my_nets:small_cnn"
[train]
batch_size = 32
base_lr = 0.05
test_interval = 40
display_interval = 20
device = "cpu"
threads = 1
[growth]
max_stages = 0
stage_iters = 80
dropin_length = 20
[depth]
enabled = false
[width]
ratios = [0.5, 0.25]
iters_per_ratio = 20
[verify]
iters = 40
tolerance = 0.5
"""


def test_a_search_runs_on_an_imported_network(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_nets.py").write_text(NET)
    (tmp_path / "mine.toml").write_text(SPEC)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_nets", raising=False)
    argv = ["search", str(tmp_path / "mine.toml"), "--runs-dir", str(tmp_path), "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "mine" / "search_summary.json").read_text())
    widths = summary["recommended"]["widths"]
    # the stem and the residual block meet at an add: one coupled group, one width
    assert widths["_0"] == widths["_3_conv"]
    sweeps = json.loads((tmp_path / "mine" / "sweeps.json").read_text())["sweeps"]
    assert [s["kind"] for s in sweeps] == ["width"]
    assert sweeps[0]["units"] == [["_0", "_3_conv"], ["_5"]]  # the coupled group is one unit
