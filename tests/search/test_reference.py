"""The checks' reference, the chosen network trained on as long, is trained once.

When a later stage grew from the chosen one, that stage's control already is this training
(same network, same weights, as long, same settings): the search reads it back. When the
check's budget differs from a stage's, or no stage grew from the chosen one, it trains it.
"""

import json

import pytest

from grownet.graph import NetGraph
from grownet.search import growing, runner
from grownet.search.decide import Decision
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


KEEPS_STAGE_1 = """
[growth]
insert_after = ["relu1", "relu2"]
stage_iters = 40
dropin_length = 20
max_stages = 2
[depth]
ratios = [0.5, 0.75]
iters_per_ratio = 10
[width]
enabled = false
[verify]
iters = 40
[final]
enabled = false
"""


def test_the_depth_sweep_thins_the_stage_growth_kept_not_a_deeper_one(tiny_spec, monkeypatch):
    def keeps_stage_1(outcomes, **_):  # stages 1 and 2 grow; then stage 1 is kept
        k = len(outcomes) - 1
        return Decision(True, k, "", "depth", k) if k < 2 else Decision(False, 1, "kept 1")

    monkeypatch.setattr(growing, "decide", keeps_stage_1)
    path = tiny_spec("s", KEEPS_STAGE_1)
    path.write_text(path.read_text().replace("widths = [16]", "widths = [16, 16]"))
    spec = load_spec(path, runs_dir=str(path.parent / "runs"))
    summary = runner.Search(spec, echo=lambda _: None, quiet=True).run()
    out = path.parent / "runs" / "s"
    stages = (out / "stages.jsonl").read_text().splitlines()
    depths = [json.loads(line)["depth"] for line in stages]
    assert summary["chosen_stage"] == 1 and depths[2] > depths[1]
    (sweep,) = json.loads((out / "sweeps.json").read_text())["sweeps"]
    assert sweep["kind"] == "dropin" and sweep["estimate"]["full_size"] == depths[1]
    # the reference is stage 1 trained on (stage 2's control): stage 2 is not trained again
    assert summary["full"]["run"] == str(out / "stages" / "baseline_2")
    checks = [json.loads((p / "graph.json").read_text()) for p in (out / "verify").iterdir()]
    assert checks and all(NetGraph.from_dict(g).num_params() < summary["full"]["params"]
                          for g in checks)  # fmt: skip
