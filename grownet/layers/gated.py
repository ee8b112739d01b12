"""Gated residual additions: depth dropout (Guo & Gould) and stochastic depth (Huang et al.).

A gate decides, once per step for the whole batch, whether a residual branch runs. The
trainable 1x1 shortcut of depth dropout and the pool-and-pad shortcut of stochastic depth are
separate graph nodes; the operators here only draw gates and add.
"""

import math

import torch
from torch import Tensor, nn

__all__ = [
    "GatedAdd",
    "draw_gates",
    "linear_decay_survival",
    "residual_add",
    "survival_probabilities",
]

KINDS = ("depth_dropout", "stochastic_depth", "drop_path")
GATE_MODES = ("skip", "mask")
RULES = ("linear", "uniform")


def _check_p_last(p_last: float) -> None:
    if not 0.0 < p_last <= 1.0:
        raise ValueError(f"p_last must be in (0, 1], got {p_last!r}")


def linear_decay_survival(index: int, total: int, *, p_last: float = 0.5) -> float:
    """Survival probability p_l = 1 - (l / L)(1 - p_L) of block ``index`` = l in 1..L.

    >>> linear_decay_survival(27, 54)
    0.75
    """
    _check_p_last(p_last)
    if total < 1:
        raise ValueError(f"total must be >= 1, got {total!r}")
    if not 1 <= index <= total:
        raise ValueError(f"index must be in 1..{total}, got {index!r}")
    return 1.0 - index / total * (1.0 - p_last)


def survival_probabilities(total: int, *, rule: str = "linear", p_last: float = 0.5) -> list[float]:
    """Survival probabilities of blocks 1..``total``: linear decay (stochastic depth) down to
    ``p_last``, or ``p_last`` for every block (depth dropout's uniform ratio).

    >>> survival_probabilities(4, p_last=0.6)
    [0.9, 0.8, 0.7, 0.6]
    >>> survival_probabilities(2, rule="uniform")
    [0.5, 0.5]
    """
    _check_p_last(p_last)
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total!r}")
    if rule == "uniform":
        return [p_last] * total
    return [linear_decay_survival(index, total, p_last=p_last) for index in range(1, total + 1)]


def draw_gates(survival: Tensor, *, generator: torch.Generator) -> Tensor:
    """One Bernoulli(survival_i) draw per block, as a bool tensor (True = the branch runs).

    Only ``generator`` is used, never the global RNG, so ranks seeded alike draw alike and can
    all skip the same branches.

    >>> draw_gates(torch.tensor([1.0, 0.0]), generator=torch.Generator().manual_seed(0))
    tensor([ True, False])
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {generator!r}")
    if not survival.is_floating_point():
        raise ValueError(f"survival must be a floating-point tensor, got dtype {survival.dtype}")
    if survival.numel() and not 0.0 <= float(survival.min()) <= float(survival.max()) <= 1.0:
        raise ValueError(f"survival probabilities must be in [0, 1], got {survival.tolist()}")
    return torch.bernoulli(survival, generator=generator).bool()


def residual_add(branch: Tensor | None, shortcut: Tensor, *, scale: float = 1.0) -> Tensor:
    """``shortcut + scale * branch``, or ``shortcut`` when the branch was skipped (None).

    >>> residual_add(torch.ones(2), torch.ones(2), scale=0.5)
    tensor([1.5000, 1.5000])
    >>> residual_add(None, torch.ones(2))
    tensor([1., 1.])
    """
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale!r}")
    if branch is None:
        return shortcut
    if branch.shape != shortcut.shape:
        raise ValueError(
            f"branch and shortcut must have the same shape, got {tuple(branch.shape)} and "
            f"{tuple(shortcut.shape)}"
        )
    return torch.add(shortcut, branch, alpha=scale)


class GatedAdd(nn.Module):
    """Residual addition behind a gate that the caller draws (see :func:`draw_gates`).

    Training: an open gate gives ``shortcut + branch``; a closed one gives ``shortcut``. In
    ``mode="skip"`` a closed branch is never computed and must be passed as None; in
    ``mode="mask"`` it was computed and is multiplied by 0.0, which is what timm's DropPath and
    torchvision's StochasticDepth amount to with one draw per batch, kept for comparison.

    Eval (``open`` is ignored): depth dropout adds the branch unscaled, since its trainable
    shortcut has already adapted to the dropping (Guo & Gould, Sec. III-D); stochastic depth
    adds ``survival * branch``, the expected training contribution (Huang et al.).

    ``kind="drop_path"`` is stochastic depth as torchvision's ``stochastic_depth`` and timm's
    DropPath scale it: an open gate adds ``branch / survival`` in training, so eval adds the
    branch as it is. It is how an imported torchvision network's stochastic depth runs here,
    with one draw per batch (so a closed branch is skipped) where torchvision draws per sample.

    >>> add = GatedAdd(kind="stochastic_depth", drop_prob=0.2)
    >>> add(None, torch.ones(2), open=False)
    tensor([1., 1.])
    >>> add.eval()(torch.ones(2), torch.ones(2))
    tensor([1.8000, 1.8000])
    >>> GatedAdd(kind="drop_path", drop_prob=0.5)(torch.ones(2), torch.ones(2))
    tensor([3., 3.])
    """

    def __init__(self, *, kind: str, drop_prob: float, mode: str = "skip") -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob!r}")
        if mode not in GATE_MODES:
            raise ValueError(f"mode must be one of {GATE_MODES}, got {mode!r}")
        self.kind = kind
        self.drop_prob = drop_prob
        self.mode = mode

    @property
    def survival(self) -> float:
        return 1.0 - self.drop_prob

    def forward(self, branch: Tensor | None, shortcut: Tensor, open: bool = True) -> Tensor:
        if not self.training:
            if branch is None:
                raise ValueError("eval adds every branch, got branch=None")
            scale = self.survival if self.kind == "stochastic_depth" else 1.0
            return residual_add(branch, shortcut, scale=scale)
        if open:
            if branch is None:
                raise ValueError("an open gate adds its branch, got branch=None")
            scale = 1.0 / self.survival if self.kind == "drop_path" else 1.0
            return residual_add(branch, shortcut, scale=scale)
        if self.mode == "skip":
            if branch is not None:
                raise ValueError("in skip mode a closed gate's branch must not be computed")
            return shortcut
        if branch is None:
            raise ValueError("in mask mode a closed gate masks its computed branch, got None")
        return residual_add(branch, shortcut, scale=0.0)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, drop_prob={self.drop_prob}, mode={self.mode!r}"
