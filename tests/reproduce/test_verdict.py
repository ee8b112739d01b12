"""The paper-versus-measured arithmetic, table-driven."""

import pytest

from grownet.reproduce.recipe import PaperValue
from grownet.reproduce.verdict import compare


@pytest.mark.parametrize(
    ("paper", "measured", "kwargs", "expected"),
    [
        (PaperValue("test_error", 6.41, tolerance=0.5), 6.91, {},
         ("6.41 %", "6.91 %", "+0.50 pp", "reproduced")),
        (PaperValue("test_error", 6.41, tolerance=0.5), 6.92, {},
         ("6.41 %", "6.92 %", "+0.51 pp", "not reproduced")),
        (PaperValue("accuracy", 99.0, approx=True, tolerance=1.0), 97.5, {},
         ("~99.00 %", "97.50 %", "-1.50 pp", "not reproduced")),
        (PaperValue("accuracy", 81.4, tolerance=1.0), 80.4, {},
         ("81.40 %", "80.40 %", "-1.00 pp", "reproduced")),
        (PaperValue("time_saving", 25.0, approx=True, tolerance=10.0, baseline="b"), 31.0, {},
         ("~25.00 %", "31.00 %", "+6.00 pp", "reproduced")),
        (PaperValue("converged", False), False, {},
         ("did not converge", "did not converge", "-", "reproduced")),
        (PaperValue("converged", True), False, {},
         ("converged", "did not converge", "-", "not reproduced")),
        (PaperValue("accuracy", 81.4, tolerance=1.0), None, {"missing": "cifar10"},
         ("81.40 %", "n/a", "-", "not run: cifar10 missing")),
        (PaperValue("accuracy", 81.4, tolerance=1.0), None, {},
         ("81.40 %", "n/a", "-", "not run")),
        (None, 97.0, {}, ("-", "97.00 %", "-", "no paper value")),
        (PaperValue("accuracy", 81.4, tolerance=1.0), 81.0, {"quick": True},
         ("81.40 %", "81.00 % (quick: not the paper's budget)",
          "-0.40 pp (quick: not the paper's budget)", "not run: quick scale")),
    ],
)  # fmt: skip
def test_verdict(paper, measured, kwargs, expected):
    got = compare(paper, measured, **kwargs)
    assert (got.paper, got.measured, got.difference, got.verdict) == expected
