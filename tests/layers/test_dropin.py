import pytest
import torch

from grownet.layers import DropIn, dropin, gradual_q

LENGTH = 4


def _inputs(requires_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """new, old of shape (N=2, C=2, H=1, W=3); old holds 1..12 and new its negation."""
    old = torch.arange(1.0, 13.0).view(2, 2, 1, 3)
    return (-old).requires_grad_(requires_grad), old.requires_grad_(requires_grad)


# Expected outputs written per sample in NCHW order: positive units came from old, negative
# units from new. d = LENGTH = 4, so tau = 1, 2, 3 give q = 0.75, 0.5, 0.25.
GRADUAL = [
    (0, "sample", [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]]),
    (1, "sample", [[1, 2, 3, 4, -5, -6], [7, 8, 9, 10, -11, -12]]),
    (2, "sample", [[1, 2, 3, -4, -5, -6], [7, 8, 9, -10, -11, -12]]),
    (3, "sample", [[1, -2, -3, -4, -5, -6], [7, -8, -9, -10, -11, -12]]),
    (4, "sample", [[-1, -2, -3, -4, -5, -6], [-7, -8, -9, -10, -11, -12]]),
    (9, "sample", [[-1, -2, -3, -4, -5, -6], [-7, -8, -9, -10, -11, -12]]),
    (0, "blob", [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]]),
    (1, "blob", [[1, 2, 3, 4, 5, 6], [7, 8, 9, -10, -11, -12]]),
    (2, "blob", [[1, 2, 3, 4, 5, 6], [-7, -8, -9, -10, -11, -12]]),
    (3, "blob", [[1, 2, 3, -4, -5, -6], [-7, -8, -9, -10, -11, -12]]),
    (4, "blob", [[-1, -2, -3, -4, -5, -6], [-7, -8, -9, -10, -11, -12]]),
    (9, "blob", [[-1, -2, -3, -4, -5, -6], [-7, -8, -9, -10, -11, -12]]),
]


@pytest.mark.parametrize(
    ("iteration", "length", "start", "expected"),
    [
        (0, 4, 0, 1.0),
        (1, 4, 0, 0.75),
        (2, 4, 0, 0.5),
        (4, 4, 0, 0.0),
        (9, 4, 0, 0.0),
        (5, 4, 10, 1.0),
        (12, 4, 10, 0.5),
        (11, 1, 10, 0.0),
    ],
)
def test_gradual_q(iteration, length, start, expected):
    assert gradual_q(iteration, length=length, start=start) == expected


@pytest.mark.parametrize(("tau", "layout", "expected"), GRADUAL)
@pytest.mark.parametrize("training", [True, False])
def test_gradual_matches_hand_computed(tau, layout, expected, training):
    new, old = _inputs()
    q = gradual_q(tau, length=LENGTH)
    out = dropin(new, old, q=q, layout=layout, training=training)
    assert torch.equal(out, torch.tensor(expected, dtype=out.dtype).view(2, 2, 1, 3))


@pytest.mark.parametrize(("tau", "layout", "expected"), GRADUAL)
def test_gradual_routes_gradients_to_supplied_units_only(tau, layout, expected):
    new, old = _inputs(requires_grad=True)
    weight = torch.linspace(0.5, 2.0, 12).view(2, 2, 1, 3)
    out = dropin(new, old, q=gradual_q(tau, length=LENGTH), layout=layout)
    (out * weight).sum().backward()
    from_old = torch.tensor(expected).view(2, 2, 1, 3) > 0
    for grad, supplied in [(old.grad, from_old), (new.grad, ~from_old)]:
        if supplied.any():
            assert torch.equal(grad, torch.where(supplied, weight, 0.0))
        else:
            assert grad is None


def test_gradual_rounds_float_error_before_flooring():
    # 0.29 * 100 == 28.999999999999996 in floating point.
    out = dropin(torch.zeros(1, 100), torch.ones(1, 100), q=0.29)
    assert out.sum() == 29


@pytest.mark.parametrize(
    ("q", "mxscale", "expected"),
    [
        (0.5, 1.0, [1, 1, -1, -1]),
        (0.5, 3.0, [2, 2, -2, -2]),  # both scales min(3, 1/0.5)
        (0.75, 3.0, [4 / 3, 4 / 3, 4 / 3, -3]),  # old min(3, 1/0.75), new capped at 3
        (0.25, 1.5, [1.5, -4 / 3, -4 / 3, -4 / 3]),
        (1.0, 3.0, [1, 1, 1, 1]),
        (0.0, 3.0, [-1, -1, -1, -1]),
    ],
)
def test_gradual_mxscale(q, mxscale, expected):
    out = dropin(-torch.ones(1, 4), torch.ones(1, 4), q=q, mxscale=mxscale)
    torch.testing.assert_close(out, torch.tensor([expected], dtype=out.dtype))


def test_regularizing_draws_new_with_probability_p_fresh_each_call():
    new, old = torch.ones(200_000), torch.zeros(200_000)
    generator = torch.Generator().manual_seed(0)
    first = dropin(new, old, mode="regularizing", q=0.7, generator=generator)
    second = dropin(new, old, mode="regularizing", q=0.7, generator=generator)
    replay = dropin(
        new, old, mode="regularizing", q=0.7, generator=torch.Generator().manual_seed(0)
    )
    assert first.mean().item() == pytest.approx(0.3, abs=0.005)
    assert not torch.equal(first, second)
    assert torch.equal(first, replay)


def test_regularizing_routes_gradients_to_drawn_source():
    new = torch.ones(1000, requires_grad=True)
    old = torch.zeros(1000, requires_grad=True)
    out = dropin(new, old, mode="regularizing", q=0.5, generator=torch.Generator().manual_seed(1))
    out.sum().backward()
    took_new = out.detach() == 1.0
    assert torch.equal(new.grad, took_new.float())
    assert torch.equal(old.grad, (~took_new).float())


def test_regularizing_mxscale_scales_each_source():
    out = dropin(
        torch.ones(1000),
        torch.ones(1000),
        mode="regularizing",
        q=0.75,
        mxscale=3.0,
        generator=torch.Generator().manual_seed(2),
    )
    assert out.unique().tolist() == pytest.approx([4 / 3, 3.0])


@pytest.mark.parametrize(
    ("p", "mxscale", "coef_new", "coef_old"),
    [(0.25, 1.0, 0.25, 0.75), (0.25, 2.0, 0.5, 1.0), (0.5, 3.0, 1.0, 1.0), (0.0, 2.0, 0.0, 1.0)],
)
def test_regularizing_eval_is_expectation(p, mxscale, coef_new, coef_old):
    new, old = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    unit = DropIn(mode="regularizing", p=p, mxscale=mxscale).eval()
    torch.testing.assert_close(unit(new, old), coef_new * new + coef_old * old)


@pytest.mark.parametrize(
    ("kwargs", "use_new", "use_old", "q", "expected"),
    [
        ({}, False, True, 1.0, "old"),
        ({}, True, False, 0.0, "new"),
        ({}, True, False, 0.1, "new"),  # floor(0.1 * 6) == 0 units from old
        ({"layout": "blob"}, True, False, 0.05, "new"),
        ({"mode": "regularizing", "p": 0.0}, False, True, None, "old"),
        ({"mode": "regularizing", "p": 1.0}, True, False, None, "new"),
    ],
)
def test_unneeded_input_may_be_none(kwargs, use_new, use_old, q, expected):
    new, old = _inputs()
    out = DropIn(**kwargs)(new if use_new else None, old if use_old else None, q)
    assert torch.equal(out, {"new": new, "old": old}[expected])


@pytest.mark.parametrize(
    ("kwargs", "q", "expected"),
    [
        ({}, 1.0, (False, True)),
        ({}, 0.0, (True, False)),
        ({}, 0.5, (True, True)),
        ({}, 0.001, (True, True)),
        ({"mode": "regularizing", "p": 0.5}, None, (True, True)),
        ({"mode": "regularizing", "p": 0.0}, None, (False, True)),
        ({"mode": "regularizing", "p": 1.0}, None, (True, False)),
    ],
)
def test_needs(kwargs, q, expected):
    assert DropIn(**kwargs).needs(q) == expected


@pytest.mark.parametrize(
    ("new_shape", "old_shape", "kwargs", "match"),
    [
        ((2, 3), (2, 3), {"q": 1.5}, r"q must be in \[0, 1\], got 1.5"),
        ((2, 3), (2, 3), {"q": -0.1}, r"q must be in \[0, 1\], got -0.1"),
        ((2, 3), (2, 3), {"q": 0.5, "mode": "bogus"}, "mode must be one of .*'bogus'"),
        ((2, 3), (2, 3), {"q": 0.5, "layout": "nchw"}, "layout must be one of .*'nchw'"),
        ((2, 3), (2, 3), {"q": 0.5, "mxscale": 0.5}, "mxscale must be >= 1, got 0.5"),
        ((2, 3), (2, 4), {"q": 0.5}, r"same shape, got \(2, 3\) and \(2, 4\)"),
        ((), (), {"q": 0.5}, "batch dimension"),
        (None, (2, 3), {"q": 0.5}, "new is None, but q=0.5 takes 1 of 3 units from old"),
        ((2, 3), None, {"q": 0.5}, "old is None"),
        (None, None, {"q": 1.0}, "got None for both"),
        (None, (2, 3), {"q": 0.5, "mode": "regularizing"}, "new is None"),
    ],
)
def test_dropin_rejects(new_shape, old_shape, kwargs, match):
    new = None if new_shape is None else torch.zeros(new_shape)
    old = None if old_shape is None else torch.zeros(old_shape)
    with pytest.raises(ValueError, match=match):
        dropin(new, old, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"iteration": 0, "length": 0}, "length must be >= 1, got 0"),
        ({"iteration": 0, "length": 4, "start": -1}, "start must be >= 0, got -1"),
        ({"iteration": -1, "length": 4}, "iteration must be >= 0, got -1"),
    ],
)
def test_gradual_q_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gradual_q(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "random"}, "mode must be one of"),
        ({"layout": "nhwc"}, "layout must be one of"),
        ({"length": 0}, "length must be >= 1, got 0"),
        ({"start": -5}, "start must be >= 0, got -5"),
        ({"p": 1.5}, r"p must be in \[0, 1\], got 1.5"),
        ({"mxscale": 0.0}, "mxscale must be >= 1, got 0.0"),
    ],
)
def test_module_rejects_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DropIn(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "q", "match"),
    [
        ({}, None, "gradual DropIn needs q"),
        ({}, 2.0, r"q must be in \[0, 1\], got 2.0"),
        ({"mode": "regularizing"}, 0.5, "draws with p=0.5; got q=0.5"),
    ],
)
def test_module_rejects_q(kwargs, q, match):
    unit = DropIn(**kwargs)
    with pytest.raises(ValueError, match=match):
        unit.needs(q)
    with pytest.raises(ValueError, match=match):
        unit(torch.zeros(2, 3), torch.zeros(2, 3), q)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"length": 8}, "mode='gradual', length=8, start=0, mxscale=1.0, layout='sample'"),
        ({"mode": "regularizing", "p": 0.3}, "mode='regularizing', p=0.3, mxscale=1.0"),
    ],
)
def test_extra_repr(kwargs, expected):
    assert DropIn(**kwargs).extra_repr() == expected
