import pytest
import torch

from grownet.layers import (
    GatedAdd,
    draw_gates,
    linear_decay_survival,
    residual_add,
    survival_probabilities,
)


@pytest.mark.parametrize(
    ("index", "total", "p_last", "expected"),
    [
        (1, 54, 0.5, 1 - 1 / 54 * 0.5),
        (27, 54, 0.5, 0.75),
        (54, 54, 0.5, 0.5),
        (3, 4, 0.2, 0.4),
        (1, 1, 1.0, 1.0),
    ],
)
def test_linear_decay_survival(index, total, p_last, expected):
    assert linear_decay_survival(index, total, p_last=p_last) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("total", "rule", "p_last", "first", "last"),
    [(54, "linear", 0.5, 1 - 1 / 54 * 0.5, 0.5), (54, "uniform", 0.8, 0.8, 0.8)],
)
def test_survival_probabilities(total, rule, p_last, first, last):
    probs = survival_probabilities(total, rule=rule, p_last=p_last)
    assert len(probs) == total
    assert probs[0] == pytest.approx(first)
    assert probs[-1] == pytest.approx(last)
    assert probs == sorted(probs, reverse=True)


def test_survival_probabilities_of_no_blocks():
    assert survival_probabilities(0) == []


@pytest.mark.parametrize(
    ("function", "args", "kwargs", "match"),
    [
        (linear_decay_survival, (0, 54), {}, "index must be in 1..54, got 0"),
        (linear_decay_survival, (55, 54), {}, "index must be in 1..54, got 55"),
        (linear_decay_survival, (1, 0), {}, "total must be >= 1, got 0"),
        (linear_decay_survival, (1, 4), {"p_last": 0.0}, r"p_last must be in \(0, 1\], got 0.0"),
        (survival_probabilities, (4,), {"p_last": 1.5}, r"p_last must be in \(0, 1\], got 1.5"),
        (survival_probabilities, (4,), {"rule": "cosine"}, "rule must be one of .*'cosine'"),
        (survival_probabilities, (-1,), {}, "total must be >= 0, got -1"),
    ],
)
def test_survival_rejects(function, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        function(*args, **kwargs)


def test_draw_gates_is_reproducible_and_leaves_global_rng_alone():
    survival = torch.full((20_000,), 0.8)
    state = torch.get_rng_state()
    first = draw_gates(survival, generator=torch.Generator().manual_seed(3))
    second = draw_gates(survival, generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.get_rng_state(), state)
    assert first.dtype == torch.bool
    assert torch.equal(first, second)
    assert first.float().mean().item() == pytest.approx(0.8, abs=0.015)


def test_draw_gates_extremes():
    gates = draw_gates(torch.tensor([1.0, 0.0, 1.0]), generator=torch.Generator())
    assert gates.tolist() == [True, False, True]


@pytest.mark.parametrize(
    ("survival", "generator", "error", "match"),
    [
        (torch.tensor([0.5]), None, TypeError, "generator must be a torch.Generator, got None"),
        (torch.tensor([1]), torch.Generator(), ValueError, "floating-point tensor"),
        (torch.tensor([0.5, 1.5]), torch.Generator(), ValueError, r"in \[0, 1\], got \[0.5, 1.5\]"),
    ],
)
def test_draw_gates_rejects(survival, generator, error, match):
    with pytest.raises(error, match=match):
        draw_gates(survival, generator=generator)


@pytest.mark.parametrize(
    ("branch", "scale", "expected"), [(None, 1.0, 1.0), (10.0, 1.0, 11.0), (10.0, 0.5, 6.0)]
)
def test_residual_add(branch, scale, expected):
    shortcut = torch.ones(2, 3)
    branch = None if branch is None else torch.full((2, 3), branch)
    assert torch.equal(residual_add(branch, shortcut, scale=scale), torch.full((2, 3), expected))


@pytest.mark.parametrize(
    ("branch", "scale", "match"),
    [
        (torch.ones(2, 1), 1.0, r"same shape, got \(2, 1\) and \(2, 3\)"),
        (torch.ones(2, 3), float("nan"), "scale must be finite, got nan"),
    ],
)
def test_residual_add_rejects(branch, scale, match):
    with pytest.raises(ValueError, match=match):
        residual_add(branch, torch.ones(2, 3), scale=scale)


# shortcut = 1, branch = 10, drop_prob = 0.2 (survival 0.8).
@pytest.mark.parametrize(
    ("kind", "training", "open", "expected"),
    [
        ("depth_dropout", True, True, 11.0),
        ("depth_dropout", True, False, 1.0),
        ("depth_dropout", False, True, 11.0),
        ("depth_dropout", False, False, 11.0),
        ("stochastic_depth", True, True, 11.0),
        ("stochastic_depth", True, False, 1.0),
        ("stochastic_depth", False, True, 9.0),
        ("stochastic_depth", False, False, 9.0),
    ],
)
def test_gated_add_rules(kind, training, open, expected):
    add = GatedAdd(kind=kind, drop_prob=0.2).train(training)
    branch = None if training and not open else torch.full((2, 3), 10.0)
    out = add(branch, torch.ones(2, 3), open=open)
    torch.testing.assert_close(out, torch.full((2, 3), expected))


@pytest.mark.parametrize(("open", "expected"), [(True, 11.0), (False, 1.0)])
def test_mask_mode_multiplies_computed_branch(open, expected):
    branch = torch.full((2, 3), 10.0, requires_grad=True)
    out = GatedAdd(kind="stochastic_depth", drop_prob=0.5, mode="mask")(
        branch, torch.ones(2, 3), open=open
    )
    out.sum().backward()
    assert torch.equal(out, torch.full((2, 3), expected))
    assert torch.equal(branch.grad, torch.full((2, 3), float(open)))


@pytest.mark.parametrize(
    ("mode", "training", "open", "with_branch", "match"),
    [
        ("skip", True, True, False, "open gate adds its branch, got branch=None"),
        ("skip", True, False, True, "must not be computed"),
        ("mask", True, False, False, "masks its computed branch, got None"),
        ("skip", False, True, False, "eval adds every branch, got branch=None"),
    ],
)
def test_gated_add_rejects_inputs(mode, training, open, with_branch, match):
    add = GatedAdd(kind="depth_dropout", drop_prob=0.5, mode=mode).train(training)
    with pytest.raises(ValueError, match=match):
        add(torch.ones(2) if with_branch else None, torch.ones(2), open=open)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "drop_block", "drop_prob": 0.1}, "kind must be one of .*'drop_block'"),
        ({"kind": "depth_dropout", "drop_prob": 1.0}, r"drop_prob must be in \[0, 1\), got 1.0"),
        ({"kind": "depth_dropout", "drop_prob": -0.1}, r"in \[0, 1\), got -0.1"),
        ({"kind": "depth_dropout", "drop_prob": 0.1, "mode": "zero"}, "mode must be one of"),
    ],
)
def test_gated_add_rejects_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GatedAdd(**kwargs)


def test_gated_add_survival_and_repr():
    add = GatedAdd(kind="stochastic_depth", drop_prob=0.25, mode="mask")
    assert add.survival == 0.75
    assert add.extra_repr() == "kind='stochastic_depth', drop_prob=0.25, mode='mask'"
