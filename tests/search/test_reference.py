"""The checks' reference, the chosen network trained on as long, is trained once.

When a later stage grew from the chosen one, that stage's control already is this training
(same network, same weights, as long, same settings): the search reads it back. When the
check's budget differs from a stage's, or no stage grew from the chosen one, it trains it.
"""

import json

import numpy as np
import pytest

from grownet.search import runner
from grownet.search.spec import load_spec

SPEC = """
name = "{name}"
dataset = "npz:{path}"
[base]
model = "mlp"
options = {{ widths = [16] }}
[train]
batch_size = 32
base_lr = 0.05
lr_policy = "cosine"
test_interval = 40
display_interval = 20
threads = 1
quiet = true
[growth]
insert_after = ["relu1"]
stage_iters = 40
dropin_length = 20
max_stages = 1
min_gain = 0.5          # fifty points: growth never pays, stage 0 is chosen
[width]
ratios = [0.5]
iters_per_ratio = 20
enabled = false
[verify]
iters = {verify}
[final]
enabled = false
"""


@pytest.mark.parametrize(("verify", "reused"), [(40, True), (30, False)])
def test_the_chosen_networks_reference_is_its_childs_control(tmp_path, verify, reused):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    x = rng.normal(0.0, 0.5, (400, 8)).astype(np.float32)
    x[np.arange(400), y] += 2.0
    np.savez(tmp_path / "d.npz", x=x[:300], y=y[:300], x_test=x[300:], y_test=y[300:])
    (tmp_path / "s.toml").write_text(SPEC.format(name="s", path=tmp_path / "d.npz",
                                                 verify=verify))  # fmt: skip
    lines: list[str] = []
    spec = load_spec(tmp_path / "s.toml", runs_dir=str(tmp_path / "runs"))
    summary = runner.Search(spec, echo=lines.append, quiet=True).run()
    out = tmp_path / "runs" / "s"
    assert summary["chosen_stage"] == 0
    control = json.loads((out / "stages" / "baseline_1" / "result.json").read_text())
    if reused:
        assert summary["full"]["run"] == str(out / "stages" / "baseline_1")
        assert summary["full"]["accuracy"] == pytest.approx(control["final_test_accuracy"])
        assert not (out / "verify" / "full-stage0").exists()
        assert any("stage 1's control" in line and "not trained again" in line for line in lines)
    else:
        assert summary["full"]["run"] == str(out / "verify" / "full-stage0")
