"""Which devices exist here: one check for every command that takes ``--device``.

>>> DEVICE.fullmatch("cuda:1") is not None, DEVICE.fullmatch("tpu") is None
(True, True)
>>> available_device("cpu")
device(type='cpu')
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from grownet.errors import DeviceError

if TYPE_CHECKING:
    import torch

DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
"""The spellings of a device grownet accepts."""


def available_device(name: str, *, label: str = "device") -> torch.device:
    """``name`` (``auto``: CUDA when there is one) as a device this machine has; a one-line
    :class:`DeviceError` naming ``label`` (a flag or a key) otherwise."""
    import torch

    cuda = torch.cuda.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not cuda:
        raise DeviceError(f"{label} {name}: no CUDA device is available here; use cpu or auto")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DeviceError(
            f"{label} {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
            "cuda:0 onwards"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"{label} mps: MPS is not available here; use cpu")
    return device
