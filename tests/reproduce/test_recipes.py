"""Every shipped recipe parses, and every case's config and network build, at both scales."""

import pytest

from grownet.reproduce import load_recipe, plan_recipe
from grownet.shipped import shipped_names, shipped_path

NAMES = shipped_names("recipe")


def test_the_papers_experiments_are_all_shipped():
    assert len(NAMES) >= 13
    for prefix in ("dropin_", "depth_dropout_", "stochastic_depth_"):
        assert any(n.startswith(prefix) for n in NAMES), prefix


@pytest.mark.parametrize("name", NAMES)
def test_recipe_parses_and_every_case_builds(name):
    recipe = load_recipe(shipped_path("recipe", name))
    assert recipe.paper and recipe.notes.strip()
    for scale in ("full", "quick"):
        plan = plan_recipe(recipe, scale=scale)  # builds every case's network
        assert [case for case, _, _ in plan] == recipe.case_names
    numeric = [c for c in recipe.cases if c.paper and c.paper.metric != "converged"]
    assert all(c.paper.tolerance is not None for c in numeric)


def test_quick_shrinks_every_iteration_count_by_the_stated_factor():
    recipe = load_recipe(shipped_path("recipe", "stochastic_depth_resnet1202_cifar10"))
    case = recipe.case("stochastic")
    full, quick = recipe.config(case), recipe.config(case, scale="quick")
    assert (quick.max_iter, quick.stepvalues, quick.warmup) == (1173, [586, 880], 39)
    assert full.max_iter == 117300 and quick.base_lr == full.base_lr
    lenet = load_recipe(shipped_path("recipe", "dropin_mnist_lenet"))
    config = lenet.config(lenet.case("lenet10-dropin-2500"), scale="quick")
    assert config.model_options["dropin_length"] == 25 and config.gamma == pytest.approx(0.01)
