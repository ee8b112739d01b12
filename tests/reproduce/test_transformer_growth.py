"""A transformer grown from a trained shallower one, the ways the growth recipe compares:
stacking repeats blocks, middle stacking copies them in place, zero-init and gradual DropIn
start as the source's function; cases show their validation loss in nats."""

import random

import pytest
import torch

from grownet.graph.executor import GraphNet
from grownet.graph.plan import StepPlan
from grownet.reproduce import load_recipe
from grownet.reproduce.grown import grown_start
from grownet.reproduce.results import collect_results
from grownet.train.trainer import Trainer

RECIPE = """
metric = "loss"
paper = "tiny transformer growth"
[train]
model = "gpt"
dataset = "text:{text}?context=8"
max_iter = 20
test_interval = 20
display_interval = 10
batch_size = 4
optimizer = "adamw"
base_lr = 1e-3
lr_policy = "fixed"
threads = 1
quiet = true
[train.model_options]
depth = 2
width = 16
heads = 2
[[case]]
name = "small"
model_options = {{ depth = 1 }}
[[case]]
name = "stack"
from = "small"
new_layers = "stack"
[[case]]
name = "middle"
from = "small"
new_layers = "middle"
[[case]]
name = "zero"
from = "small"
new_layers = "zero"
[[case]]
name = "dropin"
from = "small"
model_options = {{ dropin_blocks = 1, dropin_length = 5 }}
"""


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    random.seed(0)
    (tmp / "t.txt").write_text(" ".join(random.choice(["ab", "abc", "ca"]) for _ in range(800)))
    (tmp / "r.toml").write_text(RECIPE.format(text=tmp / "t.txt"))
    return load_recipe(tmp / "r.toml"), tmp / "runs"


def start(recipe, name):
    recipe, folder = recipe
    config = recipe.config(recipe.case(name), name=name, runs_dir=str(folder))
    graph, state = grown_start(recipe, recipe.case(name), config, study_dir=folder,
                               scale="full", overrides={})  # fmt: skip
    net = GraphNet(graph)
    net.load_state_dict(state, strict=False)
    return net.eval(), source(recipe, folder)


def source(recipe, folder):
    """The trained 1-block source, read back from its finished run."""
    trainer = Trainer(recipe.config(recipe.case("small"), name="small", runs_dir=str(folder)))
    trainer.run(resume=True)
    return trainer.net.eval()


IDS = torch.randint(0, 4, (2, 8), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["stack", "middle"])
def test_stacking_starts_the_new_block_as_a_copy(recipe, name):
    net, small = start(recipe, name)
    # one source block: stacking and middle stacking both copy it into block 2
    for one, two in (("attn1", "attn2"), ("fc1_1", "fc2_1"), ("ln1_2", "ln2_2")):
        for a, b in zip(small.layers[one].parameters(), net.layers[two].parameters(),
                        strict=True):  # fmt: skip
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["zero", "dropin"])
def test_zero_and_dropin_start_as_the_source(recipe, name):
    net, small = start(recipe, name)
    with torch.no_grad():
        torch.testing.assert_close(net(IDS, StepPlan(iteration=0)), small(IDS))


def test_cases_show_their_loss_in_nats(recipe, capsys):
    from grownet.cli import main

    loaded, folder = recipe
    path = folder.parent / "r.toml"
    assert main(["reproduce", str(path), "--runs-dir", str(folder.parent / "all"),
                 "--quiet"]) == 0  # fmt: skip
    rows = collect_results(loaded, folder.parent / "all")
    assert all(r.measured.endswith(" nats") for r in rows), [r.measured for r in rows]
