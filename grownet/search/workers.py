"""A search's independent trainings in parallel worker processes (``grownet search --workers N``).

A search is a chain (each stage from the last, each fine-tuned sweep point from the one
before), but some of its trainings do not wait on each other: the k fold models of every run
under cross-validation, a growth stage and its control, the final model's starts. Inside
:func:`parallel`, :func:`run_all` hands such a group to N spawned processes, each with 1/N of
the CPU threads (:func:`grownet.train.rundir.run_threads`), and waits for all of them. They
train the same run directories a one-process search trains, so a search started with workers
resumes without them and back; a run keeps the thread count it started with, which (like any
thread count) sets the last bits of its weights.

Outside :func:`parallel`, and inside a worker (a group within a group runs in that worker), the
calls run one after another in this process.

>>> run_all([int, float])
[0, 0.0]
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextvars import ContextVar
from typing import Any, TypeVar

from grownet.train.progress import WORKER_INDEX
from grownet.train.rundir import WORKER_THREADS

T = TypeVar("T")

_POOL: ContextVar[Executor | None] = ContextVar("grownet_search_pool", default=None)


def _start_worker(threads: int, started: Any) -> None:
    os.environ[WORKER_THREADS] = str(threads)
    with started.get_lock():  # each worker its own index: its progress bars' terminal line
        os.environ[WORKER_INDEX] = str(started.value)
        started.value += 1


@contextlib.contextmanager
def parallel(workers: int) -> Iterator[None]:
    """Within this block, :func:`run_all` trains in ``workers`` processes (1: in this one)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if workers == 1:
        yield
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    # spawn, not fork: a forked copy of a process that already runs OpenMP threads can hang
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                               initargs=(threads, context.Value("i", 0)))  # fmt: skip
    token = _POOL.set(pool)
    try:
        yield
    finally:
        _POOL.reset(token)
        pool.shutdown(wait=True, cancel_futures=True)


def run_all(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Each of ``calls`` (picklable: a module-level function or a ``functools.partial`` of
    one), their results in order; in the workers of the enclosing :func:`parallel` if any.
    The first exception raised is raised here, after every call has ended."""
    pool = _POOL.get()
    if pool is None or len(calls) < 2:
        return [call() for call in calls]
    futures = [pool.submit(call) for call in calls]
    results, error = [], None
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as err:  # every call ends before the first error is raised
            error = error or err
    if error is not None:
        raise error
    return results
