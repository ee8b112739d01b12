"""Search specs: the shipped ones load; mistakes are one line naming the key and the fix."""

from pathlib import Path

import pytest

from grownet.search.spec import SpecError, load_spec

SPECS = sorted(Path("search").glob("*.toml"))
STUDIES = [p for p in SPECS if "[study]" in p.read_text()]
SPECS = [p for p in SPECS if p not in STUDIES]  # study specs: tests/study
GOOD = """
dataset = "digits"
[base]
model = "convnet"
[growth]
insert_after = ["relu1_1"]
"""


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_shipped_specs_load(path):
    spec = load_spec(path)
    assert spec.name == path.stem
    assert spec.growth.insert_after or spec.growth.max_stages == 0


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_a_study_spec_is_named_as_one(path):
    with pytest.raises(SpecError, match="is a study spec; run it with `grownet study"):
        load_spec(path)


def test_defaults_and_overrides(tmp_path):
    (tmp_path / "s.toml").write_text(GOOD)
    spec = load_spec(tmp_path / "s.toml", name="x", runs_dir=str(tmp_path))
    assert (spec.name, spec.runs_dir, spec.growth.mode, spec.verify.iters) == (
        "x", str(tmp_path), "append", 1000)  # fmt: skip
    assert spec.train_config(name="a", max_iter=5).max_iter == 5


def test_where_it_runs_overrides_train_but_is_not_the_spec(tmp_path):
    (tmp_path / "s.toml").write_text(GOOD + '[train]\ndata_dir = "/spec"\ndevice = "cpu"\n')
    spec = load_spec(tmp_path / "s.toml")
    assert (spec.train_config().data_dir, spec.train_config().device) == ("/spec", "cpu")
    moved = load_spec(tmp_path / "s.toml", data_dir="/elsewhere", device="cpu")
    assert moved.train_config().data_dir == "/elsewhere"
    assert moved.train == spec.train  # a search resumed from another data directory is the same


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dataset = ", "is not valid TOML"),
        (GOOD + "colour = 1\n", "unknown key 'colour'"),
        (GOOD.replace('model = "convnet"', ""), "[base] needs model"),
        (GOOD + "stage_iters = 'many'\n", "stage_iters must be int"),
        (GOOD + "mode = 'triple'\n", "mode must be one of"),
        (GOOD + "dropin_length = 5000\n", "longer than stage_iters"),
        (GOOD + "[width]\nratios = [0.5, 1.5]\n", "ratios must be a non-empty list"),
        (GOOD + "[depth]\nmethod = 'guess'\n", "method must be one of"),
        (GOOD + "[depth]\nratios = [0.5]\n", "ratios needs at least two values"),
        (GOOD + "[train]\nmax_iter = 3\n", "set by the search itself"),
        (GOOD + "[train]\nbatch_size = 0\n", "batch_size must be >= 1"),
        (GOOD + "[verify]\nbackoff = -1\n", "backoff >= 0"),
        (GOOD.replace('insert_after = ["relu1_1"]', ""), "insert_after names no node"),
        (GOOD + "kind = 'deep'\n", "kind must be one of ('depth', 'width', 'both'), got 'deep'"),
        (GOOD + "kind = 'both'\nwidth_factor = 1\n", "width_factor must be a finite number > 1"),
        (GOOD + "width_factor = inf\n", "width_factor must be a finite number > 1"),
        (GOOD + "width_step = -2\n", "width_step must be >= 0"),
        (GOOD + "width_init = 'zeros'\n", "width_init must be one of ('random', 'net2net')"),
        (GOOD + "max_width = 0\n", "max_width must be >= 1, got 0"),
        (GOOD + "width_layers = 'conv1_1'\n", "width_layers must be a list"),
        (GOOD.replace('insert_after = ["relu1_1"]', "kind = 'both'"), "insert_after names no node"),
    ],
)
def test_mistakes_name_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_width_growth_needs_no_positions(tmp_path):
    path = tmp_path / "w.toml"
    path.write_text(GOOD.replace('insert_after = ["relu1_1"]', 'kind = "width"\nwidth_step = 4'))
    growth = load_spec(path).growth
    assert (growth.kinds, growth.width_step) == (("width",), 4)


def test_missing_spec_says_where_to_look(tmp_path):
    with pytest.raises(SpecError, match="does not exist; see search/"):
        load_spec(tmp_path / "nope.toml")
