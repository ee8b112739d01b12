"""A progress bar for long runs: iteration, loss, the last evaluation's accuracy (named by its
split) and ETA (tqdm)."""

from __future__ import annotations

import sys

from tqdm import tqdm


class Progress:
    """tqdm on stderr; silent when ``quiet`` (CI, tests, or a controller driving many runs)."""

    def __init__(
        self, *, total: int, initial: int = 0, quiet: bool = False, split: str = "test"
    ) -> None:
        self._key = f"{split}_acc"
        self._bar = (
            None
            if quiet
            else tqdm(
                total=total,
                initial=initial,
                unit="it",
                file=sys.stderr,
                dynamic_ncols=True,
                smoothing=0.1,
            )
        )
        self._postfix: dict[str, str] = {}
        self._done = initial

    def update(
        self, done: int, *, loss: float | None = None, accuracy: float | None = None
    ) -> None:
        if self._bar is None:
            return
        if loss is not None:
            self._postfix["loss"] = f"{loss:.4f}"
        if accuracy is not None:
            self._postfix[self._key] = f"{accuracy:.4f}"
        self._bar.update(done - self._done)
        self._done = done
        self._bar.set_postfix(self._postfix, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
