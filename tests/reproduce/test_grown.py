"""Recipe cases grown from another case: parsing, the schedule going on, the function kept at
the moment of growing, the source trained first, and the curves drawn from where it ended."""

import json

import pytest
import torch

from grownet.cli import main
from grownet.graph.executor import GraphNet
from grownet.graph.plan import StepPlan
from grownet.report.load import load_run
from grownet.reproduce import load_recipe
from grownet.reproduce.grown import grown_start
from grownet.train.config import ConfigError
from grownet.train.schedule import LRSchedule
from grownet.train.trainer import Trainer

HEAD = """
paper = "tiny growth on digits"
notes = "written by tests/reproduce/test_grown.py"
[train]
model = "convnet"
dataset = "digits"
max_iter = 60
test_interval = 30
display_interval = 10
batch_size = 32
base_lr = 0.05
lr_policy = "cosine"
seed = 1
threads = 1
quiet = true
[train.model_options]
convs = 1
widths = [8, 16]
[[case]]
name = "thin"
model_options = { widths = [4, 8] }
"""
GROWN = (
    HEAD
    + """
[[case]]
name = "gradual"
from = "thin"
widen = { init = "random", length = 20 }
[[case]]
name = "at-once"
from = "thin"
widen = { init = "net2net", length = 0 }
[[case]]
name = "deeper"
from = "thin"
new_layers = "identity"
model_options = { widths = [4, 8], convs = 2 }
"""
)


def write(tmp_path, text, name="grown.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ('from = "nothing"', "from 'nothing' is not another case"),
        ('from = "x"', "from 'x' is not another case"),
        ('from = 3', "from must name another case"),
        ('from = "thin"\nnew_layers = "zeros"', "new_layers must be one of filler, identity"),
        ('new_layers = "identity"', "new_layers and widen need from"),
        ('from = "thin"\nwiden = { init = "copy" }', "widen init must be one of random, net2net"),
        ('from = "thin"\nwiden = { length = -1 }', "widen length must be an integer >= 0"),
        ('from = "thin"\nwiden = { speed = 1 }', "widen must be a table with keys init and length"),
        ('from = "thin"\nnew_layers = "identity"\nwiden = {}', "a widened case has no new layers"),
        ('from = "thin"\nschedule_offset = 5', "schedule_offset is set from the case named"),
        ('from = "thin"\ndataset = "iris"', "grows from 'thin', which trains on another dataset"),
    ],
)
def test_mistakes_are_one_line(tmp_path, extra, said):
    path = write(tmp_path, HEAD + f'[[case]]\nname = "x"\n{extra}\n')
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    assert said in str(err.value) and "\n" not in str(err.value)


def test_a_case_grown_from_a_grown_case_is_refused(tmp_path):
    path = write(tmp_path, GROWN + '[[case]]\nname = "again"\nfrom = "deeper"\n')
    with pytest.raises(ConfigError, match="a case that is grown itself"):
        load_recipe(path)


def test_the_schedule_goes_on_where_the_source_ended(tmp_path):
    recipe = load_recipe(write(tmp_path, GROWN))
    grown = recipe.config(recipe.case("gradual"))
    assert grown.schedule_offset == 60
    assert recipe.config(recipe.case("gradual"), max_iter=40).schedule_offset == 40
    assert grown.schedule().max_iter == 120  # the cosine spans source and grown case
    assert recipe.config(recipe.case("thin")).schedule_offset == 0


@pytest.fixture(scope="module")
def grown_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grown")
    path = write(tmp, GROWN)
    assert main(["reproduce", str(path), "--runs-dir", str(tmp / "runs"), "--quiet"]) == 0
    return load_recipe(path), tmp / "runs" / "grown"


def source_output(folder, name, x):
    config = json.loads((folder / name / "config.json").read_text())
    config["quiet"] = True
    from grownet.train.config import TrainConfig

    trainer = Trainer(TrainConfig.from_dict(config))
    trainer.run(resume=True)  # finished: reads the weights back
    trainer.net.eval()
    with torch.no_grad():
        return trainer.net(x.to(memory_format=torch.channels_last))


@pytest.mark.parametrize(("case", "exact"), [("gradual", True), ("at-once", False),
                                             ("deeper", False)])  # fmt: skip
def test_a_grown_case_starts_from_its_sources_function(grown_runs, case, exact):
    recipe, folder = grown_runs
    config = recipe.config(recipe.case(case), name=case, runs_dir=str(folder))
    graph, state = grown_start(recipe, recipe.case(case), config, study_dir=folder,
                               scale="full", overrides={})  # fmt: skip
    net = GraphNet(graph)
    net.load_state_dict(state, strict=case != "deeper")  # deeper: new BN keeps its init
    net.eval()
    x = torch.randn(8, 1, 8, 8)
    with torch.no_grad():
        out = net(x, StepPlan(iteration=0))
    want = source_output(folder, "thin", x)
    # gradual: the new units are off at the start; at once: Net2Net split with 1 % noise;
    # deeper: identity convs, then a fresh BatchNorm (eps) and a ReLU of a ReLU
    torch.testing.assert_close(out, want, rtol=0, atol=1e-5 if exact else 0.05)


def test_grown_cases_ran_with_the_source_trained_once(grown_runs):
    _, folder = grown_runs
    for case in ("thin", "gradual", "at-once", "deeper"):
        result = json.loads((folder / case / "result.json").read_text())
        assert result["iterations"] == 60, case
    config = json.loads((folder / "gradual" / "config.json").read_text())
    assert config["schedule_offset"] == 60
    lines = (folder / "gradual" / "metrics.jsonl").read_text().splitlines()
    first = next(r for r in map(json.loads, lines) if r["kind"] == "train")
    cosine = LRSchedule("cosine", base_lr=0.05, max_iter=120)
    assert first["lr"] == pytest.approx(cosine(60 + first["iteration"] - 1))
    graph = json.loads((folder / "gradual" / "graph.json").read_text())
    assert any(n["op"] == "width_dropin" for n in graph["nodes"])
    graph = json.loads((folder / "at-once" / "graph.json").read_text())
    assert not any(n["op"] == "width_dropin" for n in graph["nodes"])
    table = (folder / "summary.txt").read_text()
    assert "thin, widened over 20 (random)" in table and "thin, new layers: identity" in table


def test_a_grown_curve_is_drawn_from_where_its_source_ended(grown_runs):
    _, folder = grown_runs
    run = load_run(folder / "gradual")
    assert [r["iteration"] for r in run.test] == [90, 120]


def test_a_grown_case_alone_trains_its_source_first(tmp_path):
    path = write(tmp_path, GROWN)
    argv = ["reproduce", str(path), "--runs-dir", str(tmp_path / "runs"), "--quiet",
            "--case", "at-once", "--max-iter", "20"]  # fmt: skip
    assert main(argv) == 0
    folder = tmp_path / "runs" / "grown"
    assert json.loads((folder / "thin" / "result.json").read_text())["iterations"] == 20
    assert json.loads((folder / "at-once" / "config.json").read_text())["schedule_offset"] == 20
