"""How a training run ended: its status, the rules that give it, and its result record.

Shared by the trainer, the callbacks that see a run end, and the code above that reads runs
(searches, studies, recipes), so none of them imports the trainer for a constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CONVERGED, NOT_CONVERGED, DIVERGED, INTERRUPTED = (
    "converged",
    "did not converge",
    "diverged",
    "interrupted",
)


def converged(accuracy: float, num_classes: int, *, loss: float | None = None) -> bool:
    """Converged means at least halfway from chance to perfect accuracy on the test set.

    A net that never leaves chance (MNIST: ~11 %, the majority class) is far below this; one that
    learns anything real is far above it, so the verdict does not hinge on the exact bar.
    A language model (``loss`` given: nats per token) is judged on its loss instead, halfway
    from a uniform guess's ln(num_classes) to 0: no next-token accuracy is near perfect, and
    on Tiny Shakespeare (65 characters, bar 2.09 nats) a bigram model (about 2.5) stays above
    the bar while nanoGPT's small CPU model (1.88) is below it.

    >>> converged(0.3, 65, loss=1.88), converged(0.3, 65, loss=2.5)
    (True, False)
    """
    if loss is not None:
        return loss <= 0.5 * math.log(num_classes)
    chance = 1.0 / num_classes
    return accuracy >= chance + 0.5 * (1.0 - chance)


def at_chance(accuracy: float, num_classes: int, *, loss: float | None = None) -> bool:
    """Still where a network starts: accuracy within a tenth of chance, or (a language model)
    loss within a tenth of a uniform guess's."""
    if loss is not None:
        return loss > 0.9 * math.log(num_classes)
    chance = 1.0 / num_classes
    return accuracy < chance + 0.1 * (1.0 - chance)


@dataclass
class TrainResult:
    status: str
    iterations: int
    final_test_accuracy: float | None
    best_test_accuracy: float | None
    final_test_loss: float | None
    wall_time_s: float
    run_dir: str
    reason: str = ""
    train_flops: int = 0  # iterations x FLOPs per iteration (grownet.train.compute)
