"""``StreamLoader``: ``BatchLoader``'s interface for image folders too large for memory (ImageNet).

Worker processes decode each JPEG and do the per-image geometry (random-resized or random
crop, flip, or resize + centre crop for eval) on PIL images, and return uint8 tensors; the
main process moves each batch to the device and normalises it there, like ``BatchLoader``.

Resume is exact, order and augmentation both: the epoch's order comes from a generator
seeded by (seed, epoch), and each image's transform runs under a torch seed derived from
(seed, epoch, its place in the epoch), set inside a ``fork_rng`` block. So a batch does not
depend on which worker made it, on the number of workers, or on where a run was resumed.
"""

import contextlib
import warnings
from collections.abc import Iterator

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset
from torchvision import transforms as T
from torchvision.transforms.functional import pil_to_tensor

from grownet.data.augment import normalize
from grownet.data.loader import (
    AUGMENTATION,
    PERMUTATION,
    check_loader_inputs,
    check_loader_options,
    check_state,
    derive_seed,
    shard,
)
from grownet.data.preprocess import Preprocess
from grownet.data.splits import FolderSplit
from grownet.errors import DataFileError

__all__ = ["StreamLoader", "check_channels", "folder_transform", "image_channels"]

# The formats of torchvision's IMG_EXTENSIONS (JPEG covers cameras' MPO files too). PIL picks
# a decoder by the bytes, not the name: without this list a planted "x.jpg" holding EPS would
# be handed to Ghostscript, an external interpreter.
IMAGE_FORMATS = ("JPEG", "PNG", "PPM", "BMP", "TIFF", "WEBP")


def folder_transform(preprocess: Preprocess, *, train: bool) -> T.Compose:
    """The per-image PIL pipeline for ``preprocess`` (geometry only; normalising is batched).

    ``warp=False`` (ResNet style): RandomResizedCrop(crop) for training, Resize(resize) +
    CenterCrop(crop) for eval. ``warp=True`` (Caffe AlexNet style): both start by resizing to
    resize×resize, ignoring the aspect ratio; then RandomCrop(crop) or CenterCrop(crop).

    >>> folder_transform(Preprocess(crop=224, resize=256), train=False).transforms[1]
    CenterCrop(size=(224, 224))
    """
    if preprocess.crop is None or preprocess.resize is None:
        raise ValueError(f"preprocess needs crop and resize for image folders, got {preprocess}")
    crop, resize = preprocess.crop, preprocess.resize
    if preprocess.warp:
        steps = [T.Resize((resize, resize)), T.RandomCrop(crop) if train else T.CenterCrop(crop)]
    elif train:
        steps = [T.RandomResizedCrop(crop)]
    else:
        steps = [T.Resize(resize), T.CenterCrop(crop)]
    if train and preprocess.flip:
        steps.append(T.RandomHorizontalFlip())
    return T.Compose(steps)


# PIL modes with one channel of data (an alpha channel is not data); any other mode is colour.
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def image_channels(image: Image.Image) -> int:
    """1 for a grayscale image, 3 for any colour one (palette, RGB(A), CMYK, ...).

    >>> image_channels(Image.new("L", (2, 2))), image_channels(Image.new("RGBA", (2, 2)))
    (1, 3)
    """
    return 1 if image.mode in _GRAY_MODES else 3


def check_channels(image: Image.Image, path: str, channels: int) -> None:
    """Refuse ``image`` (at ``path``) unless it has the tree's ``channels`` (1 or 3)."""
    found = image_channels(image)
    if found != channels:
        kinds = {1: "grayscale", 3: "colour"}
        raise DataFileError(
            path,
            f"is {kinds[found]} ({image.mode}) but the tree's images are {kinds[channels]} (as "
            "its first training image); images of one tree must agree: convert them all, e.g. "
            "with PIL's Image.convert('RGB') or convert('L')",
        )


@contextlib.contextmanager
def open_image(path: str) -> Iterator[Image.Image]:
    """``PIL.Image.open`` for the block; an image that cannot be read is one
    ``DataFileError`` line naming it (a real file-system error keeps its own message)."""
    try:
        with warnings.catch_warnings():
            # PIL warns between its pixel limit and twice it, and refuses past that: a header
            # claiming that many pixels is a mistake or an attack either way.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=IMAGE_FORMATS) as image:
                yield image
    except UnidentifiedImageError:  # another format, or not an image
        formats = ", ".join(IMAGE_FORMATS)
        raise DataFileError(path, f"is not a {formats} image; remove or replace it") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataFileError(path, f"claims more than {Image.MAX_IMAGE_PIXELS:,} pixels (PIL's "
                            "safety limit); remove it or shrink it") from None  # fmt: skip
    except OSError as err:
        if err.errno is not None:
            raise
        # no errno: a truncated or corrupt image
        raise DataFileError(path, f"is a damaged image ({err}); remove or replace it") from None


class _FolderImages(TorchDataset):
    """Map (index, seed) to (uint8 C×H×W image, label); the seed drives the random transform."""

    def __init__(self, split: FolderSplit, transform: T.Compose) -> None:
        self.paths, self.labels, self.transform = split.paths, split.y.tolist(), transform
        self.channels = split.channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: tuple[int, int]) -> tuple[Tensor, int]:
        index, seed = item
        path = self.paths[index]
        with open_image(path) as image:
            if self.channels is not None:
                check_channels(image, path, self.channels)
            image = image.convert("L" if self.channels == 1 else "RGB")
        # torchvision's v1 transforms draw from the global torch RNG; fork_rng confines the
        # reseeding to this call, so the caller's RNG (the main process with num_workers=0)
        # is left exactly as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            image = self.transform(image)
        return pil_to_tensor(image), self.labels[index]


class _EpochBatches(Sampler):
    """Batches of (index, per-image seed) of this rank's shard of an epoch, from batch ``start``."""

    def __init__(
        self,
        n: int,
        *,
        batch_size: int,
        drop_last: bool,
        train: bool,
        seed: int,
        rank: int,
        world_size: int,
    ):
        self.n, self.batch_size, self.drop_last = n, batch_size, drop_last
        self.train, self.seed, self.rank, self.world_size = train, seed, rank, world_size
        self.shard_size = len(shard(range(n), rank=rank, world_size=world_size, even=train))
        self.epoch = self.start = 0

    def batches_per_epoch(self) -> int:
        n, size = self.shard_size, self.batch_size
        return n // size if self.drop_last else -(-n // size)

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        # (epoch, start) are read now, not when the generator first runs.
        return self._batches(self.epoch, self.start)

    def _batches(self, epoch: int, start: int) -> Iterator[list[tuple[int, int]]]:
        if self.train:
            g = torch.Generator().manual_seed(derive_seed(self.seed, PERMUTATION, epoch))
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        order = shard(order, rank=self.rank, world_size=self.world_size, even=self.train)
        for position in range(start, self.batches_per_epoch()):
            first = position * self.batch_size
            # An image's seed follows its place in the whole epoch's order, not in the shard:
            # with one rank this is what it always was, with several no two images share one.
            yield [
                (i, derive_seed(self.seed, AUGMENTATION, epoch, k * self.world_size + self.rank))
                for k, i in enumerate(order[first : first + self.batch_size], first)
            ]


class StreamLoader:
    """Batches of an image-folder split, streamed from disk by ``num_workers`` processes.

    Same interface as ``BatchLoader``: ``next_batch()``, ``state_dict()``,
    ``load_state_dict()``, ``iter()`` (one ordered pass when ``train=False``). ``preprocess``
    must set ``crop`` and ``resize`` (the imagenet recipes do). ``rank``/``world_size`` shard
    the epochs as ``BatchLoader`` does.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for i in range(3):
    ...     Image.new("RGB", (40, 30)).save(root / f"{i}.png")
    >>> paths = tuple(str(root / f"{i}.png") for i in range(3))
    >>> split = FolderSplit(paths, torch.tensor([0, 1, 0]))
    >>> pre = Preprocess(crop=16, resize=20)
    >>> loader = StreamLoader(split, batch_size=2, preprocess=pre, train=True, num_workers=0)
    >>> x, y = loader.next_batch()
    >>> tuple(x.shape), loader.state_dict()
    ((2, 3, 16, 16), {'epoch': 1, 'position': 0})
    """

    def __init__(
        self,
        split: FolderSplit,
        *,
        batch_size: int,
        preprocess: Preprocess,
        train: bool,
        seed: int = 0,
        device: str | torch.device = "cpu",
        drop_last: bool | None = None,
        channels_last: bool = False,
        num_workers: int = 4,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        check_loader_inputs(split, FolderSplit, preprocess, channels_last, rank, world_size)
        if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
        ranks = {"rank": rank, "world_size": world_size}
        n = len(shard(range(len(split)), **ranks, even=train))
        drop_last = check_loader_options(n, batch_size, train, seed, drop_last)
        self.batch_size, self.train, self.seed, self.drop_last = batch_size, train, seed, drop_last
        self.preprocess, self.channels_last = preprocess, channels_last
        self.device = torch.device(device)
        self._a, self._b = preprocess.affine(self.device)
        self._sampler = _EpochBatches(
            len(split), batch_size=batch_size, drop_last=drop_last, train=train, seed=seed, **ranks
        )
        self._loader = DataLoader(
            _FolderImages(split, folder_transform(preprocess, train=train)),
            batch_sampler=self._sampler,
            num_workers=num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=num_workers > 0,
            # Only seeds the workers' own RNGs (unused: every image is reseeded); a private
            # generator keeps DataLoader from drawing that seed from the global RNG.
            generator=torch.Generator().manual_seed(derive_seed(seed, 0)),
        )
        self._epoch = self._position = 0
        self._live: Iterator | None = None

    def __len__(self) -> int:
        return self.batches_per_epoch

    @property
    def batches_per_epoch(self) -> int:
        """Batches in one pass (a last partial batch counts unless ``drop_last``)."""
        return self._sampler.batches_per_epoch()

    def state_dict(self) -> dict[str, int]:
        """Where the stream stands: the epoch, and the batches already served from it."""
        return {"epoch": self._epoch, "position": self._position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue where a loader with this state left off (skipped batches are not read)."""
        self._epoch, self._position = check_state(state, self.batches_per_epoch)
        self._live = None

    def _start(self, epoch: int, position: int) -> Iterator:
        self._sampler.epoch, self._sampler.start = epoch, position
        return iter(self._loader)

    def _finish(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        x, y = (t.to(self.device, non_blocking=True) for t in batch)
        x = normalize(x, self._a, self._b)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def next_batch(self) -> tuple[Tensor, Tensor]:
        """The next batch of the stream, rolling into the next epoch at the end of one."""
        if self._live is None:
            self._live = self._start(self._epoch, self._position)
        batch = next(self._live)
        self._position += 1
        if self._position == self.batches_per_epoch:
            self._epoch, self._position, self._live = self._epoch + 1, 0, None
        return self._finish(batch)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        if not self.train:
            self._live = None  # an eval pass re-uses the DataLoader; the stream restarts later
            for batch in self._start(0, 0):
                yield self._finish(batch)
            return
        epoch = self._epoch
        while self._epoch == epoch:
            yield self.next_batch()
