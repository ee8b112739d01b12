"""Dataset splits held in memory (``Split``) or on disk (``FolderSplit``), and seeded subsets.

Images stay as the raw uint8 bytes the dataset ships (N×C×H×W): a quarter of the memory of
float32, and the loaders convert each batch on the fly. Tabular data is held as encoded
float features (N×F). Subsets are drawn stratified, so a
small ``train_size`` or a held-out validation set keeps the class proportions of the whole.
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "FolderSplit",
    "Split",
    "describe",
    "fixed_test_split",
    "fold_indices",
    "held_out",
    "stratified_indices",
    "validation_size",
]


def _check_labels(y: Tensor, n: int) -> None:
    if not isinstance(y, Tensor) or y.dtype != torch.int64 or y.dim() != 1:
        raise ValueError(f"y must be a 1-D int64 tensor, got {describe(y)}")
    if y.numel() != n:
        raise ValueError(f"y has {y.numel()} labels but there are {n} samples")
    if n and int(y.min()) < 0:
        raise ValueError(f"labels must be >= 0, got minimum {int(y.min())}")


def describe(t: object) -> str:
    """A value as an error message names it: a tensor by its dtype and shape."""
    if isinstance(t, Tensor):
        return f"tensor of dtype {t.dtype} and shape {tuple(t.shape)}"
    return repr(t)


@dataclass(eq=False)
class Split:
    """Images ``x`` (N×C×H×W, uint8 raw bytes or float) or features ``x`` (N×F, float), and
    labels ``y`` (N, int64).

    >>> s = Split(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))
    >>> len(s), s.image_shape
    (4, (1, 8, 8))
    >>> len(s.subset(torch.tensor([0, 2])))
    2
    """

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.x, Tensor) or self.x.dim() not in (2, 4):
            raise ValueError(f"x must be an NxCxHxW or NxF tensor, got {describe(self.x)}")
        if self.x.dtype != torch.uint8 and not self.x.dtype.is_floating_point:
            raise ValueError(f"x must be uint8 or floating point, got {self.x.dtype}")
        if self.x.dim() == 2 and self.x.dtype == torch.uint8:
            raise ValueError("features (NxF) must be floating point, got uint8")
        _check_labels(self.y, self.x.shape[0])

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one image, or (F,) of one row of features."""
        return tuple(self.x.shape[1:])

    def subset(self, indices: Tensor) -> "Split":
        """The samples at ``indices`` (a copy, in the order given)."""
        return Split(self.x[indices], self.y[indices])


@dataclass(eq=False)
class FolderSplit:
    """Image files on disk with their labels: a split too large to hold in memory (ImageNet).

    ``channels``: ``None`` converts every image to RGB (ImageNet's few grayscale and CMYK
    JPEGs); 1 or 3 is the channel count of a user's tree, and an image of the other kind is a
    mistake the loader names.

    >>> s = FolderSplit(("a/1.png", "b/2.png"), torch.tensor([0, 1]), ("a", "b"))
    >>> len(s), s.subset(torch.tensor([1])).paths
    (2, ('b/2.png',))
    """

    paths: tuple[str, ...]
    y: Tensor
    classes: tuple[str, ...] = ()
    channels: int | None = None

    def __post_init__(self) -> None:
        self.paths = tuple(str(p) for p in self.paths)
        self.classes = tuple(self.classes)
        if self.channels not in (None, 1, 3):
            raise ValueError(f"channels must be None, 1 or 3, got {self.channels!r}")
        _check_labels(self.y, len(self.paths))

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: Tensor) -> "FolderSplit":
        """The samples at ``indices``, in the order given."""
        picked = indices.tolist()
        paths = tuple(self.paths[i] for i in picked)
        return FolderSplit(paths, self.y[indices], self.classes, self.channels)


def _check_count(name: str, k: object, n: int, *, low: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool):
        raise ValueError(f"{name} must be an int, got {k!r}")
    if not low <= k <= n:
        raise ValueError(f"{name} must be in [{low}, {n}] (the samples available), got {k}")
    return k


def stratified_indices(y: Tensor, k: int, *, seed: int) -> Tensor:
    """``k`` distinct indices into ``y``, drawn at random but keeping the class proportions.

    Each class gets ``floor(k * n_c / n)`` places; the places left go to the classes with the
    largest remainders (ties to the lower class). The draw is a pure function of ``seed`` (a
    private generator, never the global RNG). The result is sorted, so a subset keeps the
    dataset's original order.

    >>> y = torch.tensor([0] * 6 + [1] * 3)
    >>> idx = stratified_indices(y, 3, seed=0)
    >>> y[idx].tolist()
    [0, 0, 1]
    """
    n = y.numel()
    _check_count("k", k, n, low=0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}")
    y = y.cpu()
    classes, counts = torch.unique(y, return_counts=True)
    exact = counts.double() * k / max(n, 1)
    quota = exact.floor().long()
    left = k - int(quota.sum())
    if left:
        # Stable sort on the negated remainder: largest remainders first, ties by class order.
        order = torch.sort(-(exact - quota), stable=True).indices
        quota[order[:left]] += 1
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c, q in zip(classes.tolist(), quota.tolist(), strict=True):
        members = torch.nonzero(y == c).flatten()
        chosen.append(members[torch.randperm(members.numel(), generator=g)[:q]])
    return torch.sort(torch.cat(chosen)).values if chosen else torch.zeros(0, dtype=torch.long)


def held_out(y: Tensor, size: int, *, seed: int) -> tuple[Tensor, Tensor]:
    """Indices (keep, held) that split ``y`` in two, ``held`` having ``size`` stratified samples.

    This is the seeded random 45k/5k training/validation split of the stochastic-depth paper
    when ``size=5000`` on CIFAR's 50k training images.

    >>> keep, held = held_out(torch.tensor([0, 0, 1, 1]), 2, seed=0)
    >>> sorted(keep.tolist() + held.tolist())
    [0, 1, 2, 3]
    """
    held = stratified_indices(y, _check_count("size", size, y.numel(), low=0), seed=seed)
    mask = torch.ones(y.numel(), dtype=torch.bool)
    mask[held] = False
    return torch.nonzero(mask).flatten(), held


def fold_indices(y: Tensor, folds: int, fold: int, *, seed: int) -> tuple[Tensor, Tensor]:
    """Indices (keep, held) of stratified ``folds``-fold cross-validation: ``held`` is fold
    ``fold`` (0-based) of a seeded, shuffled partition that keeps the class proportions
    (scikit-learn's ``StratifiedKFold``); over the folds every sample is held out once.

    >>> y = torch.tensor([0, 1] * 6)
    >>> held = [fold_indices(y, 3, f, seed=0)[1].tolist() for f in range(3)]
    >>> sorted(i for h in held for i in h) == list(range(12)), [len(h) for h in held]
    (True, [4, 4, 4])
    """
    from sklearn.model_selection import StratifiedKFold

    n = y.numel()
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= n:
        raise ValueError(f"folds must be an int in [2, {n}] (the samples available), got {folds!r}")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < folds:
        raise ValueError(f"fold must be an int in [0, {folds - 1}], got {fold!r}")
    fewest = int(torch.unique(y, return_counts=True)[1].min())
    if fewest < folds:
        raise ValueError(f"folds = {folds} needs at least {folds} samples of every class; the "
                         f"rarest class has {fewest}: use fewer folds or a hold-out")  # fmt: skip
    # scikit-learn takes a 32-bit seed; derived seeds are 64-bit
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed % 2**32)
    keep, held = list(splitter.split(y.numpy().reshape(-1, 1), y.numpy()))[fold]
    return torch.from_numpy(keep).long(), torch.from_numpy(held).long()


TEST_FRACTION = 0.25


def fixed_test_split(y: Tensor) -> tuple[Tensor, Tensor]:
    """Indices (train, test) of a dataset that ships no test split: a stratified quarter.

    Like scikit-learn digits' split, it is the same whatever the run's seed, so every run and
    every search on the data is scored on the same test rows.

    >>> train, test = fixed_test_split(torch.tensor([0, 1] * 4))
    >>> len(train), len(test)
    (6, 2)
    """
    return held_out(y, round(TEST_FRACTION * y.numel()), seed=0)


def validation_size(
    n: int, *, fraction: float = 0.1, min_size: int = 1000, max_share: float = 0.25
) -> int:
    """How many of ``n`` training samples a search holds out for its decisions.

    The rule: ``fraction`` of the training set, but at least ``min_size`` samples where that
    leaves ``1 - max_share`` of the data to train on, else ``max_share`` of it. Why a floor:
    a decision compares two networks on these samples, and one sample's worth of accuracy
    (``1 / size``) must stay well below the gains and tolerances the rules resolve (0.1 point
    at 1,000); why a cap: small data cannot give up more than a quarter of its training set.

    >>> validation_size(60_000), validation_size(1347), validation_size(4000)
    (6000, 336, 1000)
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n must be an int >= 2 (the training samples), got {n!r}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    if not 0.0 < max_share < 1.0:
        raise ValueError(f"max_share must be in (0, 1), got {max_share!r}")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
        raise ValueError(f"min_size must be an int >= 1, got {min_size!r}")
    size = max(round(fraction * n), min(min_size, math.floor(max_share * n)))
    return min(max(size, 1), n - 1)
