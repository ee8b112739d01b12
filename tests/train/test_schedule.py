import math

import pytest

from grownet.train.schedule import LRSchedule


@pytest.mark.parametrize(
    ("kwargs", "iteration", "expected"),
    [
        ({"policy": "fixed"}, 5000, 0.01),
        ({"policy": "step", "stepsize": 100, "gamma": 0.1}, 99, 0.01),
        ({"policy": "step", "stepsize": 100, "gamma": 0.1}, 250, 0.0001),
        ({"policy": "multistep", "stepvalues": (32000, 48000)}, 31999, 0.01),
        ({"policy": "multistep", "stepvalues": (32000, 48000)}, 32000, 0.001),
        ({"policy": "multistep", "stepvalues": (32000, 48000)}, 64000, 0.0001),
        # Caffe LeNet solver: base 0.01, inv, gamma 1e-4, power 0.75
        ({"policy": "inv", "gamma": 1e-4, "power": 0.75}, 0, 0.01),
        ({"policy": "inv", "gamma": 1e-4, "power": 0.75}, 10000, 0.01 * 2**-0.75),
        ({"policy": "cosine"}, 0, 0.01),
        ({"policy": "cosine"}, 5000, 0.005),
        ({"policy": "cosine"}, 10000, 0.0),
        ({"policy": "fixed", "warmup": 10}, 0, 0.001),
        ({"policy": "fixed", "warmup": 10}, 9, 0.01),
    ],
)
def test_policies(kwargs, iteration, expected):
    schedule = LRSchedule(base_lr=0.01, max_iter=10000, **kwargs)
    assert math.isclose(schedule(iteration), expected, rel_tol=1e-9, abs_tol=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"policy": "poly"}, "lr_policy must be one of"),
        ({"policy": "fixed", "base_lr": 0}, "base_lr must be a number > 0, got 0"),
        ({"policy": "multistep"}, "multistep policy needs stepvalues"),
        ({"policy": "inv", "power": -1.0}, "inv policy needs gamma and power >= 0"),
        ({"policy": "step"}, "stepsize >= 1"),
        ({"policy": "multistep", "stepvalues": (5, 2)}, r"stepvalues must increase, got \[5, 2\]"),
        ({"policy": "fixed", "warmup": -1}, "warmup must be >= 0"),
    ],
)
def test_validation(kwargs, match):
    kwargs = {"base_lr": 0.1, "max_iter": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        LRSchedule(**kwargs)
