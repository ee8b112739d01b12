"""Text as a stream of tokens, served as windows for next-token prediction (GPT-style models).

A text file is read whole and turned into one stream of token ids, at one of two levels:

- ``char``: the file is decoded as UTF-8; the vocabulary is the sorted set of its distinct
  characters (by code point), a token is a character's position in it. The alphabet is read
  from the *whole* file, as nanoGPT's ``shakespeare_char`` does: that leaks nothing of the
  validation and test text but the set of symbols it uses (and a test character unseen in
  training would otherwise have no id).
- ``byte``: the vocabulary is the 256 byte values and a token is a byte of the file; nothing is
  fitted, and any file (not UTF-8, binary) can be read.

The stream is split contiguously, never shuffled across the boundaries: with ``n`` tokens, train
is tokens ``[0, floor(0.9 n))``, validation ``[floor(0.9 n), floor(0.95 n))``, test the rest
(Tiny Shakespeare's 1,115,394 characters: 1,003,854 / 55,770 / 55,770). A split's samples
(``TextSplit``) are its windows of ``context`` tokens: ``x = tokens[i : i + context]`` and
``y = tokens[i + 1 : i + context + 1]`` (``x`` shifted by one), one for every start ``i``; no
window crosses a split boundary, and none is materialised before a batch asks for it.

``TextLoader`` serves them with ``BatchLoader``'s interface: training batches draw window
starts in a per-epoch seeded permutation of all starts (exact resume from the same two
counters, ranks take disjoint shards); an evaluation pass reads the non-overlapping windows at
stride ``context`` in order, so every token of the split but a tail shorter than a window is
predicted exactly once.

>>> split = TextSplit(torch.arange(10), context=4)
>>> len(split), split.in_shape, split.eval_windows
(6, (4,), 2)
>>> x, y = split.windows(torch.tensor([0, 5]))
>>> x.tolist(), y.tolist()
([[0, 1, 2, 3], [5, 6, 7, 8]], [[1, 2, 3, 4], [6, 7, 8, 9]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from grownet.data.dirs import DatasetMissing, missing_files, require_file
from grownet.data.loader import BatchLoader, check_loader_inputs, to_device
from grownet.data.preprocess import Preprocess, recipe
from grownet.data.sources import Raw
from grownet.data.splits import describe
from grownet.errors import DataFileError

__all__ = [
    "DEFAULT_CONTEXT",
    "LEVELS",
    "TextLoader",
    "TextSplit",
    "Vocabulary",
    "read_text",
    "read_tinyshakespeare",
    "split_bounds",
    "tokenize",
]

LEVELS = ("char", "byte")
DEFAULT_CONTEXT = 64  # nanoGPT's baby GPT on a CPU (shakespeare_char, block_size 64)
_URL = (  # Tiny Shakespeare's usual source
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)


@dataclass(frozen=True)
class Vocabulary:
    """Token ids <-> text: ``level`` ``"char"`` with its ``symbols`` (the sorted distinct
    characters, id = position), or ``"byte"`` (id = byte value, ``symbols`` empty).

    A run's ``dataset.json`` holds both (``source["text"]``), so samples can be decoded later.

    >>> v = Vocabulary("char", "\\n abc")
    >>> len(v), v.encode("cab").tolist(), v.decode([3, 4, 1, 2])
    (5, [4, 2, 3], 'bc a')
    >>> Vocabulary("byte").decode(Vocabulary("byte").encode("né"))
    'né'
    """

    level: str
    symbols: str = ""

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {self.level!r}")
        if not isinstance(self.symbols, str):
            raise ValueError(f"symbols must be a str, got {self.symbols!r}")
        if self.level == "byte" and self.symbols:
            raise ValueError(f"byte level has no symbols (ids are bytes), got {self.symbols!r:.80}")
        distinct_sorted = list(self.symbols) == sorted(set(self.symbols))
        if self.level == "char" and not (self.symbols and distinct_sorted):
            raise ValueError(
                f"char symbols must be distinct characters, sorted, got {self.symbols!r:.80}"
            )

    def __len__(self) -> int:
        return 256 if self.level == "byte" else len(self.symbols)

    @property
    def classes(self) -> tuple[str, ...]:
        """One name per id: the character itself, or a byte's two hex digits ("0a")."""
        if self.level == "byte":
            return tuple(f"{b:02x}" for b in range(256))
        return tuple(self.symbols)

    def encode(self, text: str) -> Tensor:
        """``text``'s token ids (1-D int64); a character outside the vocabulary is an error."""
        if self.level == "byte":
            return torch.tensor(list(text.encode("utf-8")), dtype=torch.int64)
        index = {c: i for i, c in enumerate(self.symbols)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise ValueError(f"characters not in the vocabulary of {len(self)}: {unknown[:10]!r}")
        return torch.tensor([index[c] for c in text], dtype=torch.int64)

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """The text of token ``ids`` (a 1-D sequence; bytes that are not UTF-8 decode as U+FFFD)."""
        if isinstance(ids, Tensor) and ids.dim() != 1:
            raise ValueError(f"ids must be 1-D, got {describe(ids)}")
        values = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        if any(not 0 <= i < len(self) for i in values):
            raise ValueError(f"token ids must be in [0, {len(self)}), got {values[:10]!r:.80}")
        if self.level == "byte":
            return bytes(values).decode("utf-8", errors="replace")
        return "".join(self.symbols[i] for i in values)


def tokenize(data: bytes, level: str, path: str | Path = "<bytes>") -> tuple[Tensor, Vocabulary]:
    """A file's bytes as token ids (1-D int64) and their vocabulary; ``path`` names the file
    in a ``DataFileError`` (``char`` level of bytes that are not UTF-8).

    >>> ids, vocab = tokenize("héhé!".encode(), "char")
    >>> ids.tolist(), vocab.symbols
    ([1, 2, 1, 2, 0], '!hé')
    >>> tokenize("hé".encode(), "byte")[0].tolist()
    [104, 195, 169]
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if level == "byte":
        ids = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
        return torch.from_numpy(ids), Vocabulary("byte")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataFileError(
            path, f"is not UTF-8 text (byte {err.start}: {err.reason}); read it with level=byte"
        ) from err
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")  # one code point per character
    alphabet = np.unique(codes)  # sorted by code point, as sorted(set(text))
    ids = np.searchsorted(alphabet, codes).astype(np.int64)
    return torch.from_numpy(ids), Vocabulary("char", "".join(map(chr, alphabet.tolist())))


def split_bounds(n: int) -> tuple[int, int]:
    """Where a stream of ``n`` tokens is cut: train ``[0, a)``, validation ``[a, b)``, test
    ``[b, n)`` with ``a = floor(0.9 n)`` and ``b = floor(0.95 n)`` (exact integer arithmetic).

    >>> split_bounds(1_115_394)
    (1003854, 1059624)
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be an int >= 0 (the tokens), got {n!r}")
    return n * 9 // 10, n * 19 // 20


@dataclass(eq=False)
class TextSplit:
    """A contiguous run of ``tokens`` (1-D int64) served as windows of ``context`` tokens.

    Sample ``i`` (``0 <= i < len(split)``) is the window ``x = tokens[i : i + context]`` with
    targets ``y = tokens[i + 1 : i + context + 1]``; ``len`` counts every start, and
    ``eval_windows`` the non-overlapping windows at stride ``context`` an evaluation reads.
    """

    tokens: Tensor
    context: int

    def __post_init__(self) -> None:
        t = self.tokens
        if not isinstance(t, Tensor) or t.dtype != torch.int64 or t.dim() != 1:
            raise ValueError(f"tokens must be a 1-D int64 tensor, got {describe(self.tokens)}")
        c = self.context
        if not isinstance(c, int) or isinstance(c, bool) or c < 1:
            raise ValueError(f"context must be an int >= 1, got {c!r}")
        if self.tokens.numel() < c + 1:
            raise ValueError(
                f"tokens must hold at least context + 1 = {c + 1} tokens (one window), "
                f"got {self.tokens.numel()}"
            )

    def __len__(self) -> int:
        return self.tokens.numel() - self.context

    @property
    def in_shape(self) -> tuple[int, ...]:
        """The shape of one sample's input: ``(context,)`` token ids."""
        return (self.context,)

    @property
    def eval_windows(self) -> int:
        """How many windows an evaluation pass reads (starts ``0, context, 2 context, ...``)."""
        return (self.tokens.numel() - 1) // self.context

    def head(self, windows: int) -> TextSplit:
        """The first ``windows`` windows (the tokens they span): a training subset that keeps
        the text contiguous."""
        n = len(self)
        if isinstance(windows, bool) or not isinstance(windows, int) or not 1 <= windows <= n:
            raise ValueError(f"windows must be an int in [1, {n}], got {windows!r}")
        return TextSplit(self.tokens[: windows + self.context], self.context)

    def windows(self, starts: Tensor) -> tuple[Tensor, Tensor]:
        """Inputs and targets (each N×context int64, on the tokens' device) of the windows that
        start at ``starts`` (1-D int64, on the same device)."""
        if not isinstance(starts, Tensor) or starts.dtype != torch.int64 or starts.dim() != 1:
            raise ValueError(f"starts must be a 1-D int64 tensor, got {describe(starts)}")
        # every window of context + 1 tokens as a view; only the ones asked for are copied
        spans = self.tokens.unfold(0, self.context + 1, 1).index_select(0, starts)
        return spans[:, :-1].contiguous(), spans[:, 1:].contiguous()


def read_text(path: Path, *, level: str = "char", context: int = DEFAULT_CONTEXT) -> Raw:
    """A text file as a ``Raw`` of three ``TextSplit`` (train, val, test: 90/5/5, see the
    module docstring), its vocabulary's symbols as the classes.

    The file must give every split at least ``context + 1`` tokens (about ``20 (context + 1)``
    in all); ``source["text"]`` of the loaded dataset records the level, the vocabulary, the
    context and the split's boundaries in tokens.
    """
    if isinstance(context, bool) or not isinstance(context, int) or context < 1:
        raise ValueError(f"context must be an int >= 1, got {context!r}")
    path = Path(path)
    require_file(path, "a text file")
    data = path.read_bytes()
    tokens, vocab = tokenize(data, level, path)
    n = tokens.numel()
    if n == 0:
        raise DataFileError(path, "is empty; name a text file to train on")
    a, b = split_bounds(n)
    sizes = (a, b - a, n - b)
    if min(sizes) < context + 1:
        raise DataFileError(
            path,
            f"holds {n} {level} tokens, split 90/5/5 into {'/'.join(map(str, sizes))} "
            f"(train/val/test); context {context} needs at least {context + 1} in each: use a "
            f"smaller context or a file of at least {20 * (context + 1)} tokens",
        )
    train, val, test = (TextSplit(tokens[s:e], context) for s, e in ((0, a), (a, b), (b, n)))
    provenance = {
        "level": level,
        "vocabulary_size": len(vocab),
        **({"vocabulary": vocab.symbols} if level == "char" else {}),
        "context": context,
        "tokens": n,
        "boundaries": {"train": [0, a], "val": [a, b], "test": [b, n]},
    }

    def finish(
        train: TextSplit, val: TextSplit | None, test: TextSplit, preprocessing: str
    ) -> tuple:
        return train, val, test, recipe("text", preprocessing), {"text": provenance}

    return Raw(
        train,
        test,
        vocab.classes,
        str(path.parent),
        {path.name: len(data)},
        f"grownet text, {level} level",
        val=val,
        family="text",
        finish=finish,
    )


def read_tinyshakespeare(data_dir: Path) -> Raw:
    """Tiny Shakespeare (char-rnn's ``input.txt``, 1,115,394 characters, 65 distinct) from
    ``data_dir/tinyshakespeare/``, at the char level with the default context."""
    directory = Path(data_dir) / "tinyshakespeare"
    if missing_files(directory, ["input.txt"]):
        fix = f"place char-rnn's input.txt there (grownet does not download it), from {_URL}"
        raise DatasetMissing("Tiny Shakespeare", directory, ["input.txt"], fix=fix)
    return read_text(directory / "input.txt")


class TextLoader(BatchLoader):
    """Batches of windows of a ``TextSplit``: ``x`` and ``y`` each N×context int64 token ids,
    on ``device``; the interface, resume and sharding of ``BatchLoader``.

    Training (``train=True``): every epoch a seeded permutation of all window starts (``order``
    gives this rank's share of it). Evaluation: the non-overlapping windows at stride
    ``context`` in order (``order`` numbers them: window ``k`` starts at ``k * context``).
    ``preprocess`` must be the text recipe (the identity); ``channels_last`` does not apply to
    token ids and is ignored.

    >>> split = TextSplit(torch.arange(20), context=4)
    >>> loader = TextLoader(split, batch_size=3, preprocess=recipe("text", "paper"), train=False)
    >>> [x[:, 0].tolist() for x, _ in loader]
    [[0, 4, 8], [12]]
    >>> x, y = TextLoader(split, batch_size=3, preprocess=recipe("text", "paper"), train=True,
    ...                   seed=1).next_batch()
    >>> x.shape, x.dtype, bool((x[:, 1:] == y[:, :-1]).all())
    (torch.Size([3, 4]), torch.int64, True)
    """

    def __init__(
        self,
        split: TextSplit,
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
        check_loader_inputs(split, TextSplit, preprocess, channels_last, rank, world_size)
        p = preprocess
        if p.scale != 1.0 or p.mean is not None or p.std is not None or p.augments:
            raise ValueError(
                "preprocess of token ids must be the identity (recipe('text', 'paper')), got "
                f"{preprocess.describe()}"
            )
        total = len(split) if train else split.eval_windows
        self._stream(total, batch_size, train, seed, drop_last, device, rank, world_size)
        self.preprocess, self.channels_last = preprocess, channels_last
        self.text = TextSplit(to_device(split.tokens, self.device), split.context)
        self._stride = 1 if train else split.context

    def batch_at(self, epoch: int, position: int) -> tuple[Tensor, Tensor]:
        """Batch ``position`` of ``epoch``: a pure function of (seed, epoch, position) and the
        rank."""
        start, stop = self._bounds(position)
        return self.text.windows(self.order(epoch)[start:stop] * self._stride)
