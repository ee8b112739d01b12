"""The ``grownet bench`` arguments, checked before anything is timed or written.

A benchmark runs for minutes; a mistake in its arguments must cost none of them. Every check
raises a :class:`grownet.errors.UserError` whose one line names the flag, the value given and
what is allowed, so the command line prints it and exits 2.

Example:
    >>> bench_device("cpu"), check_count("--iters", 3, low=1)
    ('cpu', 3)
    >>> check_count("--batch", 0, low=1)
    Traceback (most recent call last):
    ...
    grownet.errors.BadValueError: --batch 0: must be an integer >= 1
"""

from __future__ import annotations

from grownet.devices import DEVICE, available_device
from grownet.errors import BadValueError, DeviceError

DEVICES = "auto, cpu, cuda or cuda:N"


def check_count(flag: str, value: int | None, *, low: int) -> int | None:
    """``value`` if it is None (the default applies) or an integer >= ``low``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
        raise BadValueError(f"{flag} {value!r}: must be an integer >= {low}")
    return value


def bench_device(name: str) -> str:
    """The device a benchmark times on: ``auto`` resolved, CUDA only where it exists.

    The timers synchronise CUDA streams only, so other accelerators (``mps``) would time
    kernels still running: they are refused, like a device this machine lacks.
    """
    if not isinstance(name, str) or not DEVICE.fullmatch(name) or name == "mps":
        raise DeviceError(f"--device {name!r}: not a device the benchmarks time on; use {DEVICES}")
    return str(available_device(name, label="--device"))
