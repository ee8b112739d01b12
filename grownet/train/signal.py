"""How much of the input each weight layer's output still carries, measured on a test batch.

A stack of layers whose weights shrink what passes through them (a small Gaussian filler, no
rectifier between) hands its head an output that barely depends on the image: the classifier
then sees a constant and answers the majority class. Test accuracy only shows the end of that;
the *signal* of every layer shows where it was lost. A layer's signal is the standard
deviation of each output unit across the batch's samples, averaged over units: input-free
offsets (biases, a constant feature map) add nothing to it, so it falls towards 0 wherever
the input's information fades out, whatever the activations' own size.

The trainer records it at every test (``"signal"`` in a test record of ``metrics.jsonl``,
one batch, one extra pass over nothing: the hooks read the evaluation's own forward) and the
report draws it per layer over the iterations.

Example:
    >>> import torch
    >>> from torch import nn
    >>> round(input_signal(torch.tensor([[1.0, 5.0], [3.0, 5.0]])), 3)  # units: std 1, std 0
    0.5
    >>> net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    >>> with SignalProbe(net.named_children()) as probe:
    ...     _ = net(torch.randn(8, 4))
    >>> sorted(probe.signal)
    ['0', '1']
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor, nn
from torch.nn.modules.conv import _ConvNd

WEIGHT_LAYERS = (_ConvNd, nn.Linear)


def input_signal(out: Tensor) -> float:
    """Mean over output units of the standard deviation across the batch (dimension 0).

    ``out`` has at least two dimensions, batch first; one sample has no spread (0.0).
    """
    if out.dim() < 2:
        raise ValueError(f"a layer output needs a batch dimension and units, got shape "
                         f"{tuple(out.shape)}")  # fmt: skip
    if out.shape[0] < 2:
        return 0.0
    return out.detach().float().std(dim=0, correction=0).mean().item()


class SignalProbe:
    """Hooks on the weight layers (convolutions, linear layers) of ``layers``, name and module
    pairs, that record each one's :func:`input_signal` the first time it runs; removed on exit.

    The first call only: a layer run twice in one pass (shared weights) reports its first use.
    """

    def __init__(self, layers: Iterable[tuple[str, nn.Module]]) -> None:
        self.signal: dict[str, float] = {}
        self._layers = [(n, m) for n, m in layers if isinstance(m, WEIGHT_LAYERS)]
        self._handles: list[Any] = []

    def __enter__(self) -> SignalProbe:
        for name, module in self._layers:
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def _hook(self, name: str) -> Any:
        def record(module: nn.Module, inputs: Any, output: Any) -> None:
            if name not in self.signal and isinstance(output, Tensor):
                self.signal[name] = input_signal(output)

        return record

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def in_order(signal: dict[str, float], order: Iterable[str]) -> dict[str, float]:
    """``signal`` keyed in ``order`` (a graph's topological order), rounded for the record."""
    return {name: float(f"{signal[name]:.4g}") for name in order if name in signal}
