"""The checks' reference, the chosen network trained on as long, is trained once.

When a later stage grew from the chosen one, that stage's control already is this training
(same network, same weights, as long, same settings): the search reads it back. When the
check's budget differs from a stage's, or no stage grew from the chosen one, it trains it.
"""

import json

import pytest

from grownet.search import runner
from grownet.search.spec import load_spec

TABLES = """
[growth]
insert_after = ["relu1"]
stage_iters = 40
dropin_length = 20
max_stages = 1
min_gain = 0.5          # fifty points: growth never pays, stage 0 is chosen
[width]
enabled = false
[verify]
iters = {verify}
[final]
enabled = false
"""


@pytest.mark.parametrize(("verify", "reused"), [(40, True), (30, False)])
def test_the_chosen_networks_reference_is_its_childs_control(tiny_spec, verify, reused):
    path = tiny_spec("s", TABLES.format(verify=verify))
    tmp_path = path.parent
    lines: list[str] = []
    spec = load_spec(path, runs_dir=str(tmp_path / "runs"))
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
