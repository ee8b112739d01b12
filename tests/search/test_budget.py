"""The search's iteration budget covers the whole search, and the plan says so up front."""

import dataclasses
from pathlib import Path

import pytest

from grownet.search import runner
from grownet.search.budget import Plan
from grownet.search.runs import spent
from grownet.search.spec import SpecError, load_spec
from grownet.shipped import resolve_spec


def digits(**growth):
    spec = load_spec(resolve_spec("digits"))
    return dataclasses.replace(spec, growth=dataclasses.replace(spec.growth, **growth))


@pytest.mark.parametrize(("growth", "stages", "total"), [
    # digits: 5 folds. Base 600 x 5; each stage 600 x 5 twice (with its control); references
    # 2 x 600 x 5; depth 3 x 200 + 3 checks x 600, x 5; width 6 x 200 + 3 x 600, x 5;
    # recommended check 600 x 5; final 2 starts x 600 x (stages + 1)
    ({}, 0, 3000 + 6000 + 12000 + 15000 + 3000 + 1200),
    ({}, 2, 3000 + 2 * 6000 + 6000 + 12000 + 15000 + 3000 + 3600),
    ({"baseline": False}, 1, 3000 + 3000 + 6000 + 12000 + 15000 + 3000 + 2400),
])
def test_the_plan_bounds_every_phase(growth, stages, total):
    plan = Plan.of(digits(**growth), width_groups=4)  # one width sweep: per_layer is off
    assert plan.folds == 5 and plan.total(stages) == total


def test_growth_stops_where_the_rest_would_overrun():
    plan = Plan.of(digits(iter_budget=50_000), width_groups=1)
    assert plan.total(1) <= 50_000 < plan.total(2)
    assert plan.overrun(1) == "" and "overrun iter_budget: 54,600 of 50,000" in plan.overrun(2)


TABLES = """
[growth]
insert_after = ["relu1"]
stage_iters = 40
dropin_length = 20
[width]
ratios = [0.5, 0.25]
iters_per_ratio = 20
[depth]
ratios = [0.5, 0.75]
iters_per_ratio = 20
[verify]
iters = 20
backoff = 1
[final]
iters = 40
"""


def tiny(tiny_spec):
    path = tiny_spec("tiny", TABLES)
    return load_spec(path, runs_dir=str(path.parent / "runs"))


def test_a_search_spends_at_most_its_budget(tiny_spec):
    spec = tiny(tiny_spec)
    plan = Plan.of(spec, width_groups=1)
    budget = plan.total(1)  # room for one stage past the base, not two
    spec = dataclasses.replace(spec, growth=dataclasses.replace(
        spec.growth, iter_budget=budget, max_stages=3, min_gain=-1.0))  # fmt: skip
    lines = []
    summary = runner.Search(spec, echo=lines.append, quiet=True).run()
    assert lines[0].startswith("plan: base") and "at most" in lines[2]
    assert "would overrun iter_budget" in summary["growth_decision"]
    assert spent(Path(spec.runs_dir) / spec.name).iterations <= budget


def test_a_budget_below_the_least_search_is_refused_before_anything_runs(tiny_spec):
    spec = tiny(tiny_spec)
    spec = dataclasses.replace(spec, growth=dataclasses.replace(spec.growth, iter_budget=10))
    with pytest.raises(SpecError, match="iter_budget = 10 cannot cover the base"):
        runner.Search(spec, echo=lambda line: None, quiet=True).run()
    assert not (Path(spec.runs_dir) / spec.name).exists()
