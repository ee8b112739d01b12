"""DropIn (Smith, Hand & Doster, 2016): mix a newly inserted layer's output into an earlier one's.

Each unit of the output comes either from the old path y(l^) (a share q) or from the new layer
y(l) (a share p = 1 - q). Gradual DropIn hands units over from old to new in a fixed order as
training proceeds; regularizing DropIn picks them at random on every call, like dropout.
"""

import math

import torch
from torch import Tensor, nn

__all__ = ["DropIn", "dropin", "gradual_q"]

MODES = ("gradual", "regularizing")
LAYOUTS = ("sample", "blob")


def _check_schedule(length: int, start: int) -> None:
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length!r}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start!r}")


def gradual_q(iteration: int, *, length: int, start: int = 0) -> float:
    """Share q of units a gradual DropIn takes from the old path at ``iteration``.

    q = clamp(1 - (iteration - start) / length, 0, 1), the paper's q = 1 - tau/d. A ``start``
    after 0 gives asynchronous DropIn: the unit keeps q = 1 until its own start step.

    >>> gradual_q(250, length=1000)
    0.75
    >>> gradual_q(50, length=100, start=100)
    1.0
    """
    _check_schedule(length, start)
    if iteration < 0:
        raise ValueError(f"iteration must be >= 0, got {iteration!r}")
    return min(1.0, max(0.0, 1.0 - (iteration - start) / length))


def _check_options(mode: str, layout: str, mxscale: float) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if not mxscale >= 1.0:
        raise ValueError(f"mxscale must be >= 1, got {mxscale!r}")


def _check_q(q: float) -> None:
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q!r}")


def _scale(share: float, mxscale: float) -> float:
    # Dropout-style 1/share rescaling, capped because uncapped it diverged as the share neared 0
    # (memorandum Sec. 4.2). With mxscale == 1 the cap makes it 1. A zero share never reaches
    # the output, so its scale is moot; this only avoids dividing by zero.
    return mxscale if share == 0.0 else min(mxscale, 1.0 / share)


def _scaled(x: Tensor, scale: float) -> Tensor:
    # Skips a multiply-by-one kernel (and a graph node) in the default, unscaled case.
    return x if scale == 1.0 else x * scale


def _require(x: Tensor | None, name: str, why: str) -> Tensor:
    if x is None:
        raise ValueError(f"{name} is None, but {why}")
    return x


def dropin(
    new: Tensor | None,
    old: Tensor | None,
    *,
    mode: str = "gradual",
    q: float,
    mxscale: float = 1.0,
    layout: str = "sample",
    training: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mix ``new`` = y(l), the new layer's output, with ``old`` = y(l^), an earlier output.

    ``q`` is the share taken from ``old`` (q = 1 - p). Gradual mode (paper eqs. 1, 3-5) takes the
    first floor(q * n) units of each sample, flattened in NCHW order, from ``old`` and the rest
    from ``new``; ``layout="blob"`` takes the prefix over the whole N x C x H x W blob instead,
    as the memorandum's Caffe code does. Gradual mode is deterministic, so ``training`` does not
    change it. Regularizing mode (eq. 2) draws every unit from ``new`` with probability p, anew
    on each call; in eval it returns the expectation p*s_new*new + q*s_old*old. With
    ``mxscale`` > 1 the new part is scaled by s_new = min(mxscale, 1/p) and the old part by
    s_old = min(mxscale, 1/q) (memorandum appendix B).

    Gradients reach each input only through the units it supplied. An input whose share is
    zero may be passed as ``None``; an input that supplies every unit is returned as is, not
    copied (with the default ``mxscale``), as dropout does in eval. ``generator`` drives the
    regularizing draws and must live on the inputs' device.

    >>> old, new = torch.ones(1, 4), torch.zeros(1, 4)
    >>> dropin(new, old, q=0.5)
    tensor([[1., 1., 0., 0.]])
    >>> dropin(None, old, q=1.0)
    tensor([[1., 1., 1., 1.]])
    """
    _check_options(mode, layout, mxscale)
    _check_q(q)
    if new is None and old is None:
        raise ValueError("dropin needs at least one input, got None for both new and old")
    if new is not None and old is not None and new.shape != old.shape:
        raise ValueError(
            f"new and old must have the same shape, got {tuple(new.shape)} and {tuple(old.shape)}"
        )
    ref = new if new is not None else old
    if ref.dim() < 1:
        raise ValueError(f"inputs need a batch dimension, got shape {tuple(ref.shape)}")
    p = 1.0 - q
    s_new, s_old = _scale(p, mxscale), _scale(q, mxscale)

    if mode == "regularizing":
        if p == 0.0:
            return _scaled(_require(old, "old", f"q={q!r} takes every unit from it"), s_old)
        if q == 0.0:
            return _scaled(_require(new, "new", f"q={q!r} takes every unit from it"), s_new)
        why = f"regularizing DropIn with q={q!r} mixes both inputs"
        new, old = _require(new, "new", why), _require(old, "old", why)
        if not training:
            return torch.add(old * (q * s_old), new, alpha=p * s_new)
        take_new = torch.rand(new.shape, generator=generator, device=new.device) < p
        return torch.where(take_new, _scaled(new, s_new), _scaled(old, s_old))

    # "blob" treats the whole batch as one row, so the last samples go over to new first.
    rows = ref.shape[0] if layout == "sample" else 1
    units = math.prod(ref.shape[1:]) if layout == "sample" else ref.numel()
    # Rounding first keeps float error in q from losing a unit, e.g. 0.29 * 100 = 28.999...
    k = math.floor(round(q * units, 9))
    if k == units:
        return _scaled(_require(old, "old", f"q={q!r} takes all {units} units from it"), s_old)
    if k == 0:
        return _scaled(_require(new, "new", f"q={q!r} takes all {units} units from it"), s_new)
    why = f"q={q!r} takes {k} of {units} units from old and the rest from new"
    new, old = _require(new, "new", why), _require(old, "old", why)
    # Slicing and concatenating, rather than blending with a 0/1 mask, means each source sees
    # gradient only on the units it supplied and no work is spent on the units it did not.
    out = torch.cat(
        [
            _scaled(old.reshape(rows, units)[:, :k], s_old),
            _scaled(new.reshape(rows, units)[:, k:], s_new),
        ],
        dim=1,
    )
    return out.view(ref.shape)


class DropIn(nn.Module):
    """DropIn unit: ``forward(new, old, q)`` mixes a new layer's output into an earlier one's.

    Gradual mode takes ``q`` from the caller each step, normally
    ``gradual_q(iteration, length=self.length, start=self.start)``; regularizing mode draws
    with probability ``p`` from ``new`` and takes no ``q``. See :func:`dropin` for the rule.

    Test time: gradual DropIn is deterministic, so eval applies the caller's ``q`` exactly as
    training does (q = 0, the new layer alone, once the unit has grown in). Regularizing DropIn
    returns the expectation of its training output, p*s_new*new + q*s_old*old, which is
    p*new + q*old for the default ``mxscale=1``.

    ``needs(q)`` tells the caller which inputs a step reads, so it can skip computing the
    other and pass ``None``.

    >>> unit = DropIn(length=4)
    >>> unit.needs(1.0), unit.needs(0.5)
    ((False, True), (True, True))
    >>> unit(torch.zeros(1, 4), torch.ones(1, 4), q=0.75)
    tensor([[1., 1., 1., 0.]])
    """

    def __init__(
        self,
        *,
        mode: str = "gradual",
        length: int = 1000,
        start: int = 0,
        p: float = 0.5,
        mxscale: float = 1.0,
        layout: str = "sample",
    ) -> None:
        super().__init__()
        _check_options(mode, layout, mxscale)
        _check_schedule(length, start)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p!r}")
        self.mode = mode
        self.length = length
        self.start = start
        self.p = p
        self.mxscale = mxscale
        self.layout = layout

    def _old_share(self, q: float | None) -> float:
        if self.mode == "regularizing":
            if q is not None:
                raise ValueError(f"regularizing DropIn draws with p={self.p!r}; got q={q!r}")
            return 1.0 - self.p
        if q is None:
            raise ValueError("gradual DropIn needs q for this step (see gradual_q), got None")
        _check_q(q)
        return q

    def needs(self, q: float | None = None) -> tuple[bool, bool]:
        """Whether this step reads ``(new, old)``, decided from q alone."""
        q = self._old_share(q)
        return q < 1.0, q > 0.0

    def forward(self, new: Tensor | None, old: Tensor | None, q: float | None = None) -> Tensor:
        return dropin(
            new,
            old,
            mode=self.mode,
            q=self._old_share(q),
            mxscale=self.mxscale,
            layout=self.layout,
            training=self.training,
        )

    def extra_repr(self) -> str:
        if self.mode == "regularizing":
            return f"mode={self.mode!r}, p={self.p}, mxscale={self.mxscale}"
        return (
            f"mode={self.mode!r}, length={self.length}, start={self.start}, "
            f"mxscale={self.mxscale}, layout={self.layout!r}"
        )
