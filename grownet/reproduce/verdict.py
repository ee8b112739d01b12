"""Paper versus measured: one case's measured value, its difference from the paper's, and the
verdict.

Numbers are percentages (accuracy, test error, time saving) and differences percentage points,
measured minus paper. A numeric case is ``reproduced`` when the difference is within the
paper value's tolerance (inclusive); a ``converged`` case when the run's outcome matches (a
diverged run did not converge either). A case without a finished run is ``not run`` (and says
``<dataset> missing`` when that is why); a quick run is never a verdict on the paper's numbers.

>>> compare(PaperValue("test_error", 6.41, tolerance=0.5), 6.80).verdict
'reproduced'
>>> compare(PaperValue("converged", False), False).verdict
'reproduced'
"""

from __future__ import annotations

from dataclasses import dataclass

from grownet.reproduce.recipe import PaperValue
from grownet.reproduce.scale import QUICK_LABEL

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_RUN = "not run"
NO_PAPER_VALUE = "no paper value"
QUICK_VERDICT = "not run: quick scale"


@dataclass(frozen=True)
class Comparison:
    paper: str
    measured: str
    difference: str
    verdict: str
    difference_value: float | None = None


def paper_text(paper: PaperValue | None) -> str:
    """``~99.00 %`` (read from a figure), ``6.41 %`` (a table), ``converged``.

    >>> paper_text(PaperValue("accuracy", 99.0, approx=True, tolerance=1.0))
    '~99.00 %'
    """
    if paper is None:
        return "-"
    if paper.metric == "converged":
        text = "converged" if paper.value else "did not converge"
    else:
        text = f"{paper.value:.2f} {_unit(paper.metric)}"
    return ("~" if paper.approx else "") + text


def measured_text(
    paper: PaperValue | None, measured: float | bool | None, *, metric: str = "accuracy"
) -> str:
    """``measured`` in the paper value's metric, else in ``metric``."""
    if measured is None:
        return "n/a"
    if isinstance(measured, bool) or (paper is not None and paper.metric == "converged"):
        return "converged" if measured else "did not converge"
    return f"{measured:.2f} {_unit(paper.metric if paper else metric)}"


def _unit(metric: str) -> str:
    """A loss is in nats per token; every other number a percentage."""
    return "nats" if metric == "loss" else "%"


def compare(
    paper: PaperValue | None,
    measured: float | bool | None,
    *,
    missing: str | None = None,
    unfinished: str | None = None,
    quick: bool = False,
    metric: str = "accuracy",
) -> Comparison:
    """Paper versus ``measured`` (None: no finished run; ``missing``: the dataset that is not
    there; ``unfinished``: why a run that exists has no final value yet). ``metric``: what a
    case without a paper value was measured in."""
    shown = measured_text(paper, measured, metric=metric)
    if quick and measured is not None:
        shown += f" ({QUICK_LABEL})"
    if measured is None:
        why = unfinished or (f"{NOT_RUN}: {missing} missing" if missing else NOT_RUN)
        return Comparison(paper_text(paper), shown, "-", why)
    if paper is None:
        return Comparison("-", shown, "-", NO_PAPER_VALUE)
    if paper.metric == "converged":
        same = bool(measured) == bool(paper.value)
        verdict = QUICK_VERDICT if quick else (REPRODUCED if same else NOT_REPRODUCED)
        return Comparison(paper_text(paper), shown, "-", verdict)
    diff = float(measured) - float(paper.value)
    close = abs(diff) <= (paper.tolerance or 0.0) + 1e-9  # 1e-9: 0.5 within 0.5 despite floats
    verdict = QUICK_VERDICT if quick else (REPRODUCED if close else NOT_REPRODUCED)
    unit = "nats" if paper.metric == "loss" else "pp"
    text = f"{diff:+.2f} {unit}" + (f" ({QUICK_LABEL})" if quick else "")
    return Comparison(paper_text(paper), shown, text, verdict, diff)
