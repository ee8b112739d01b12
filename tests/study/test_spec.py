"""Study specs: every key checked, one line naming the key, the value and what is allowed."""

from pathlib import Path

import pytest

from grownet.cli import main
from grownet.errors import BadValueError
from grownet.study.space import SpaceError
from grownet.study.spec import apply_knobs, grid_size, load_study_spec

ROOT = Path(__file__).parents[2]
GOOD = """
name = "s"
dataset = "digits"
[study]
{study}
[base]
model = "convnet"
[train]
max_iter = 20
[space.model.widths]
type = "categorical"
choices = [4, 8]
length = 2
{space}
"""


def write(tmp_path, study="", space="") -> Path:
    path = tmp_path / "s.toml"
    path.write_text(GOOD.format(study=study, space=space))
    return path


def test_the_shipped_nas_spec_loads():
    spec = load_study_spec(ROOT / "search" / "digits_nas.toml")
    assert spec.objectives == ("accuracy", "params") and spec.directions == ["maximize", "minimize"]
    assert (spec.sampler, spec.pruner, spec.n_trials) == ("nsga2", "none", 48)
    assert [p.name for p in spec.space] == ["model.convs", "model.widths"]


def test_defaults_for_one_objective_and_a_grid(tmp_path):
    spec = load_study_spec(write(tmp_path, 'sampler = "grid"'))
    assert (spec.sampler, spec.pruner, spec.n_trials) == ("grid", "median", 4)
    assert grid_size(spec.space) == 4


def test_knobs_land_where_their_names_say():
    tables = {"base": {"model": "convnet", "options": {"convs": 1}}, "train": {"max_iter": 5}}
    out = apply_knobs(tables, {"model.widths": [8, 16], "train.base_lr": 0.1})
    assert out["base"]["options"] == {"convs": 1, "widths": [8, 16]}
    assert out["train"] == {"max_iter": 5, "base_lr": 0.1}
    assert tables["train"] == {"max_iter": 5}  # the spec's own tables are not changed


@pytest.mark.parametrize(
    ("study", "space", "message"),
    [
        ("objectives = ['speed']", "", "objectives must be a list of accuracy, params"),
        ("objectives = ['params', 'params']", "", "objectives has duplicates"),
        ("sampler = 'bayes'", "", "sampler must be one of tpe, random, grid, nsga2"),
        ("pruner = 'halving'", "", "pruner must be one of median, hyperband, none"),
        ("objectives = ['accuracy', 'params']\npruner = 'median'", "", "needs one objective"),
        ("n_trials = 0", "", "n_trials must be an integer >= 1"),
        ("n_trials = 'ten'", "", "n_trials must be an integer >= 1"),
        ("timeout_s = -1", "", "timeout_s must be a number >= 0"),
        ("wobble = 1", "", "unknown key 'wobble'"),
        ("kind = 'grow'", "", "kind must be one of train, search"),
        ("kind = 'search'", "", 'kind = "search" needs search ='),
        ("search = 'digits'", "", 'is for kind = "search"'),
        ("", "[space.train.momentum]\ntype = 'float'\nlow = 0.9\nhigh = 0.1", "low must be <="),
        ("", "[space.train.base_lr]\ntype = 'float'\nlow = 0\nhigh = 1\nlog = true", "log = true"),
        ("", "[space.train.base_lr]\ntype = 'real'", "type must be one of int, float"),
        ("", "[space.train.base_lr]\ntype = 'int'\nlow = 1\nhigh = 2\nchoices = [1]",
         "unknown key 'choices'"),
        ("", "[space.train.name]\ntype = 'int'\nlow = 1\nhigh = 2", "is not a TrainConfig key"),
        ("", "[space.model.depth]\ntype = 'int'\nlow = 1\nhigh = 2", "has no option 'depth'"),
        ("", "[space.growth.stagger]\ntype = 'int'\nlow = 0\nhigh = 2", 'for kind = "search"'),
        ("", "[space.widths]\ntype = 'int'\nlow = 1\nhigh = 2", "<section>.<key>"),
        ("", "[space.train.seed]\ntype = 'int'\nlow = 0\nhigh = 2\nlength = 0.5", "length must"),
        ("sampler = 'grid'", "[space.train.base_lr]\ntype = 'float'\nlow = 0.1\nhigh = 0.2",
         "a grid needs a step"),
        ("", "[space.train.max_iter]\ntype = 'int'\nlow = 0\nhigh = 2", "max_iter must be >= 1"),
    ],
)  # fmt: skip
def test_mistakes_are_one_line(tmp_path, capsys, study, space, message):
    path = write(tmp_path, study, space)
    with pytest.raises(BadValueError) as err:
        load_study_spec(path)
    assert message in str(err.value)
    assert main(["study", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    out = capsys.readouterr().err
    assert out.count("\n") == 1 and message in out
    assert not (tmp_path / "runs").exists()  # nothing written


def test_a_study_of_searches_takes_its_tables_from_the_search_spec(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("[study]\nkind = 'search'\nsearch = 'digits'\nn_trials = 2\n"
                    "[space.growth.stagger]\ntype = 'int'\nlow = 0\nhigh = 100\nstep = 50\n")
    spec = load_study_spec(path)
    one = spec.search_spec({"growth.stagger": 50}, name="t0", runs_dir=str(tmp_path))
    assert one.growth.stagger == 50 and one.dataset == "digits" and one.name == "t0"
    path.write_text("dataset = 'mnist'\n" + path.read_text())
    with pytest.raises(SpaceError, match="belongs in the search spec"):
        load_study_spec(path)


def test_a_study_samples_one_dropin_length_per_unit(tmp_path):
    """The DropIn paper's future work: tailored DropIn lengths for different DropIn layers."""
    import optuna

    path = tmp_path / "s.toml"
    path.write_text("name = 's'\ndataset = 'mnist'\n[study]\nobjectives = ['accuracy']\n"
                    "[base]\nmodel = 'lenet2n'\noptions = { n = 3 }\n[train]\nmax_iter = 10\n"
                    "[space.model.dropin_length]\ntype = 'int'\nlow = 100\nhigh = 1000\n"
                    "step = 100\nlength = 4\n")  # fmt: skip
    spec = load_study_spec(path)
    trial = optuna.create_study().ask()
    values = {p.name: p.suggest(trial) for p in spec.space}
    assert sorted(trial.params) == [f"model.dropin_length[{i}]" for i in range(4)]
    config = spec.train_config(values, name="t", runs_dir=str(tmp_path))
    assert config.model_options["dropin_length"] == [trial.params[f"model.dropin_length[{i}]"]
                                                      for i in range(4)]  # fmt: skip
