"""Ctrl-C that stops a run between steps, so what is saved is always a consistent state.

A ``KeyboardInterrupt`` raised wherever the signal lands can leave the data loader a batch
ahead of the iteration, or the weights updated with the iteration not yet counted; a
checkpoint taken then resumes to other numbers. While a :class:`StopRequest` is installed, the
first Ctrl-C only sets a flag that the training loop reads after a whole step (its logging,
evaluation and checkpoint included); the loop then saves and ends as interrupted. A second
Ctrl-C raises ``KeyboardInterrupt`` at once, for a user who must stop now: the trainer then
keeps its last consistent checkpoint.

Signal handlers belong to the main thread; elsewhere (a worker thread) nothing is installed
and no flag is ever set.

>>> import os, signal
>>> stop = StopRequest(announce=False)
>>> with stop.installed():
...     os.kill(os.getpid(), signal.SIGINT)
...     stop.requested
True
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType


class StopRequest:
    """A flag set by the first Ctrl-C while :meth:`installed` is active."""

    def __init__(self, *, announce: bool = True) -> None:
        self.requested = False
        self.announce = announce

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt  # the second Ctrl-C: stop at once
        self.requested = True
        if self.announce:
            print(
                "\ngrownet: stopping after this step to save a consistent checkpoint "
                "(Ctrl-C again to stop at once)",
                file=sys.stderr,
                flush=True,
            )

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)
