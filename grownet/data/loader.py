"""``BatchLoader``: an in-memory split served as preprocessed, augmented batches, with exact resume.

The whole split lives on the device as raw uint8 (moved once); each batch is gathered,
normalised and augmented there in a few tensor ops. Everything random is a pure function of
(seed, epoch, position): the epoch's order comes from a generator seeded by (seed, epoch), a
batch's augmentation from one seeded by (seed, epoch, position). So ``state_dict()`` is just
those two counters, and a loader restored from it yields bit for bit what the original would
have, with no RNG state to save and the global RNG never touched.

Several processes (DDP ranks) share one stream: with ``rank`` and ``world_size`` each takes every
``world_size``-th entry of the same per-epoch permutation (:func:`shard`), so the ranks see
disjoint samples, and a state dict means the same on every rank.
"""

import hashlib
from collections.abc import Iterator
from typing import TypeVar

import torch
from torch import Tensor

from grownet.data.augment import apply_augmentation, draw_augmentation, normalize
from grownet.data.preprocess import Preprocess
from grownet.data.splits import Split

__all__ = ["BatchLoader", "check_state", "derive_seed", "shard", "to_device"]

Order = TypeVar("Order", range, list[int], Tensor)

# Tags keep the permutation and augmentation streams apart even for equal counters.
PERMUTATION, AUGMENTATION = 1, 2


def derive_seed(*parts: int) -> int:
    """A 63-bit seed that is a fixed function of integer ``parts`` (stable across runs).

    >>> derive_seed(0, 1, 2) == derive_seed(0, 1, 2) != derive_seed(0, 2, 1)
    True
    """
    data = ",".join(str(int(p)) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


def _check_int(name: str, value: object, *, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def check_loader_inputs(
    split: object,
    split_type: type,
    preprocess: object,
    channels_last: object,
    rank: object,
    world_size: object,
) -> None:
    """Shared type checks of a loader's split, preprocessing, layout and rank."""
    if not isinstance(split, split_type):
        raise ValueError(f"split must be a {split_type.__name__}, got {type(split).__name__}")
    if not isinstance(preprocess, Preprocess):
        raise ValueError(f"preprocess must be a Preprocess, got {type(preprocess).__name__}")
    if not isinstance(channels_last, bool):
        raise ValueError(f"channels_last must be a bool, got {channels_last!r}")
    check_rank(rank, world_size)


def check_rank(rank: object, world_size: object) -> None:
    """Check a (``rank``, ``world_size``) pair of keyword options."""
    _check_int("world_size", world_size, low=1)
    _check_int("rank", rank, low=0)
    if rank >= world_size:
        raise ValueError(f"rank must be < world_size ({world_size}), got {rank}")


def shard(order: Order, *, rank: int, world_size: int, even: bool) -> Order:
    """Rank ``rank``'s share of ``order``: every ``world_size``-th entry, starting at ``rank``.

    ``even`` first drops the last ``len(order) % world_size`` entries, so that every rank gets
    as many samples as the others: training ranks must take the same number of steps per epoch.
    (The permutation changes every epoch, so no sample is left out for good.) Without ``even``
    (evaluation) every entry goes to exactly one rank.

    >>> list(shard(range(7), rank=1, world_size=3, even=True))
    [1, 4]
    >>> list(shard(range(7), rank=0, world_size=3, even=False))
    [0, 3, 6]
    """
    if even:
        order = order[: len(order) - len(order) % world_size]
    return order[rank::world_size]


def check_state(state: object, batches_per_epoch: int) -> tuple[int, int]:
    """Validate a loader ``state_dict`` and return its (epoch, position)."""
    if not isinstance(state, dict) or set(state) != {"epoch", "position"}:
        raise ValueError(f"state must be a dict with keys 'epoch' and 'position', got {state!r}")
    epoch = _check_int("state['epoch']", state["epoch"], low=0)
    position = _check_int("state['position']", state["position"], low=0)
    if position >= batches_per_epoch:
        raise ValueError(
            f"state['position'] must be < {batches_per_epoch} (batches per epoch), got {position}"
        )
    return epoch, position


def check_loader_options(
    n: int, batch_size: object, train: object, seed: object, drop_last: object
) -> bool:
    """Shared argument checks of the loaders; returns the effective ``drop_last``."""
    _check_int("batch_size", batch_size, low=1)
    if not isinstance(train, bool):
        raise ValueError(f"train must be a bool, got {train!r}")
    _check_int("seed", seed, low=0)
    if drop_last is None:
        drop_last = train
    if not isinstance(drop_last, bool):
        raise ValueError(f"drop_last must be a bool or None, got {drop_last!r}")
    if n == 0 or (drop_last and batch_size > n):
        raise ValueError(
            f"batch_size {batch_size} with drop_last={drop_last} leaves no batch from {n} samples"
        )
    return drop_last


class BatchLoader:
    """Preprocessed (and, when ``train``, shuffled and augmented) batches of an in-memory split.

    Training use is a stream: ``next_batch()`` rolls from one epoch into the next, and
    ``iter(loader)`` yields what is left of the current epoch. Evaluation (``train=False``)
    iterates the split once in order, with no augmentation and the last partial batch kept.

    ``rank``/``world_size``: this process's :func:`shard` of every epoch (and of the evaluation
    pass); a batch holds ``batch_size`` samples per rank, so the global batch of a data-parallel
    step is ``batch_size * world_size``.

    >>> split = Split(torch.zeros(10, 1, 4, 4, dtype=torch.uint8), torch.arange(10))
    >>> loader = BatchLoader(split, batch_size=4, preprocess=Preprocess(), train=True, seed=1)
    >>> x, y = loader.next_batch()
    >>> x.shape, x.dtype, loader.state_dict()
    (torch.Size([4, 1, 4, 4]), torch.float32, {'epoch': 0, 'position': 1})
    >>> [len(y) for _, y in BatchLoader(split, batch_size=4, preprocess=Preprocess(), train=False)]
    [4, 4, 2]
    >>> [len(BatchLoader(split, batch_size=2, preprocess=Preprocess(), train=True, rank=r,
    ...                  world_size=3)) for r in range(3)]  # 9 of the 10 samples, 3 per rank
    [1, 1, 1]
    """

    def __init__(
        self,
        split: Split,
        *,
        batch_size: int,
        preprocess: Preprocess,
        train: bool,
        seed: int = 0,
        device: str | torch.device = "cpu",
        drop_last: bool | None = None,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        check_loader_inputs(split, Split, preprocess, channels_last, rank, world_size)
        self._stream(len(split), batch_size, train, seed, drop_last, device, rank, world_size)
        self.preprocess, self.channels_last = preprocess, channels_last
        self.x = to_device(split.x, self.device)
        self.y = to_device(split.y, self.device)
        self._a, self._b = preprocess.affine(self.device)

    def _stream(
        self,
        total: int,
        batch_size: int,
        train: bool,
        seed: int,
        drop_last: bool | None,
        device: str | torch.device,
        rank: int,
        world_size: int,
    ) -> None:
        """Set up the stream over ``total`` samples (what a loader of another kind of split,
        e.g. ``grownet.data.text.TextLoader``, shares with this one)."""
        self.rank, self.world_size, self._total = rank, world_size, total
        self._n = len(shard(range(total), rank=rank, world_size=world_size, even=train))
        self.drop_last = check_loader_options(self._n, batch_size, train, seed, drop_last)
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.device = torch.device(device)
        self._epoch = self._position = 0
        self._order: tuple[int, Tensor] | None = None  # (epoch, permutation on the device)

    def __len__(self) -> int:
        return self.batches_per_epoch

    @property
    def batches_per_epoch(self) -> int:
        """Batches in one pass over this rank's shard (a last partial batch counts unless
        ``drop_last``)."""
        n = self._n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def state_dict(self) -> dict[str, int]:
        """Where the stream stands: the epoch, and the batches already served from it."""
        return {"epoch": self._epoch, "position": self._position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue exactly where a loader with this state left off.

        Exact means: the same split, batch size, ``drop_last``, seed and preprocessing as the
        loader that saved the state; the state itself cannot check those.
        """
        self._epoch, self._position = check_state(state, self.batches_per_epoch)

    def next_batch(self) -> tuple[Tensor, Tensor]:
        """The next batch of the stream, rolling into the next epoch at the end of one."""
        batch = self.batch_at(self._epoch, self._position)
        self._position += 1
        if self._position == self.batches_per_epoch:
            self._epoch, self._position = self._epoch + 1, 0
        return batch

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        if not self.train:
            # Evaluation: one full ordered pass, independent of (and not moving) the stream.
            for position in range(self.batches_per_epoch):
                yield self.batch_at(0, position)
            return
        epoch = self._epoch
        while self._epoch == epoch:
            yield self.next_batch()

    def order(self, epoch: int) -> Tensor:
        """This rank's sample order in ``epoch``: its shard of a permutation when training, of
        the identity otherwise."""
        _check_int("epoch", epoch, low=0)
        n, ranks = self._total, {"rank": self.rank, "world_size": self.world_size}
        if not self.train:
            return shard(torch.arange(n, device=self.device), **ranks, even=False)
        if self._order is None or self._order[0] != epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, PERMUTATION, epoch))
            perm = shard(torch.randperm(n, generator=g), **ranks, even=True)
            self._order = (epoch, perm.to(self.device, non_blocking=True))
        return self._order[1]

    def batch_at(self, epoch: int, position: int) -> tuple[Tensor, Tensor]:
        """Batch ``position`` of ``epoch``: a pure function of (seed, epoch, position) and the
        rank."""
        start, stop = self._bounds(position)
        if self.train or self.world_size > 1:
            idx = self.order(epoch)[start:stop]
            x, y = self.x.index_select(0, idx), self.y.index_select(0, idx)
        else:
            x, y = self.x[start:stop], self.y[start:stop]
        x = normalize(x, self._a, self._b)
        if self.train and self.preprocess.augments:
            # Numbered as if the ranks' batches were interleaved: each rank draws its own crops
            # and flips, and a single process (rank 0 of 1) draws what it always did.
            batch = position * self.world_size + self.rank
            g = torch.Generator().manual_seed(derive_seed(self.seed, AUGMENTATION, epoch, batch))
            pad = self.preprocess.pad
            aug = draw_augmentation(x.shape[0], pad=pad, flip=self.preprocess.flip, generator=g)
            x = apply_augmentation(x, aug, pad=pad)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def _bounds(self, position: int) -> tuple[int, int]:
        """Where batch ``position`` starts and stops in this rank's order of an epoch."""
        _check_int("position", position, low=0)
        if position >= self.batches_per_epoch:
            raise ValueError(f"position must be < {self.batches_per_epoch}, got {position}")
        start = position * self.batch_size
        return start, min(start + self.batch_size, self._n)


def to_device(t: Tensor, device: torch.device) -> Tensor:
    """``t`` on ``device``: moved once, through pinned memory from the CPU to CUDA."""
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        # Pinned staging lets the one big copy run at full bandwidth, asynchronously.
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)
