"""Tabular rows to network input: numeric columns standardised, categorical ones one-hot.

``TableSplit`` holds rows as read (numbers as float64, categories as text) until the splits are
final; ``Encoding.fit`` then learns the means, standard deviations and category lists from the
*training* split alone (validation and test rows never leak into them), and encodes every split
into float features. The fitted encoding is plain JSON: ``load_dataset`` puts it in the
dataset's provenance, which the trainer saves as ``dataset.json`` in every run directory, so a
network a search recommends can be applied to new rows::

    enc = load_encoding("runs/wine/stage0")        # the run's dataset.json
    x = enc.encode_rows([{"alcohol": 13.2, ...}])  # N×F float32, ready for the network
    enc.classes[int(net(x).argmax(1)[0])]          # the class name

A category the training split never saw encodes as all zeros (no column of its own).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from grownet.data.splits import Split
from grownet.errors import BadValueError, DataFileError

__all__ = ["Encoding", "TableSplit", "load_encoding"]


@dataclass(eq=False)
class TableSplit:
    """Rows before encoding: ``numeric`` (N×Fn float64), ``categorical`` (N×Fc text), ``y``.

    >>> t = TableSplit(np.zeros((3, 1)), np.array([["a"], ["b"], ["a"]], dtype=object),
    ...                torch.tensor([0, 1, 0]), ("size",), ("colour",))
    >>> len(t), len(t.subset(torch.tensor([0, 2])))
    (3, 2)
    """

    numeric: np.ndarray
    categorical: np.ndarray
    y: Tensor
    numeric_names: tuple[str, ...] = ()
    categorical_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.y)
        if self.numeric.shape != (n, len(self.numeric_names)):
            raise ValueError(
                f"numeric must be {n}x{len(self.numeric_names)}, got {self.numeric.shape}"
            )
        if self.categorical.shape != (n, len(self.categorical_names)):
            raise ValueError(
                f"categorical must be {n}x{len(self.categorical_names)}, got "
                f"{self.categorical.shape}"
            )

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, indices: Tensor) -> TableSplit:
        """The rows at ``indices``, in the order given."""
        picked = indices.cpu().numpy()
        return TableSplit(
            self.numeric[picked],
            self.categorical[picked],
            self.y[indices],
            self.numeric_names,
            self.categorical_names,
        )


@dataclass
class Encoding:
    """A fitted tabular encoding (see the module docstring); JSON via ``to_dict``."""

    numeric: list[str]
    mean: list[float]
    std: list[float]
    categorical: list[str] = field(default_factory=list)
    categories: list[list[str]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    target: str | None = None

    @classmethod
    def fit(
        cls, train: TableSplit, *, classes: Sequence[str], target: str | None = None
    ) -> Encoding:
        """Means, standard deviations and categories of ``train`` (population std; a constant
        column gets std 1, so it encodes as zeros rather than NaN).

        >>> t = TableSplit(np.array([[1.0], [3.0]]), np.array([["b"], ["a"]], dtype=object),
        ...                torch.tensor([0, 1]), ("x",), ("c",))
        >>> enc = Encoding.fit(t, classes=["no", "yes"])
        >>> enc.mean, enc.std, enc.categories, enc.features
        ([2.0], [1.0], [['a', 'b']], ['x', 'c=a', 'c=b'])
        >>> enc(t).x.tolist()
        [[-1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]
        """
        if len(train) == 0:
            raise ValueError("cannot fit an encoding on an empty training split")
        mean = train.numeric.mean(axis=0) if train.numeric.size else np.zeros(0)
        std = train.numeric.std(axis=0) if train.numeric.size else np.zeros(0)
        std = np.where(std > 0, std, 1.0)
        categories = [
            sorted(set(train.categorical[:, j].tolist())) for j in range(train.categorical.shape[1])
        ]
        return cls(
            numeric=list(train.numeric_names),
            mean=[float(v) for v in mean],
            std=[float(v) for v in std],
            categorical=list(train.categorical_names),
            categories=categories,
            classes=[str(c) for c in classes],
            target=target,
        )

    @property
    def features(self) -> list[str]:
        """The encoded columns' names: each numeric column, then ``column=category`` ones."""
        onehot = [
            f"{c}={v}"
            for c, cats in zip(self.categorical, self.categories, strict=True)
            for v in cats
        ]
        return [*self.numeric, *onehot]

    def encode(self, numeric: np.ndarray, categorical: np.ndarray) -> Tensor:
        """N×F float32 features of N rows (numeric N×Fn, categorical N×Fc)."""
        n = numeric.shape[0]
        parts = [(numeric - np.asarray(self.mean)) / np.asarray(self.std)]
        for j, cats in enumerate(self.categories):
            index = {c: k for k, c in enumerate(cats)}
            onehot = np.zeros((n, len(cats)))
            for i, value in enumerate(categorical[:, j].tolist()):
                k = index.get(value)
                if k is not None:  # unseen in training: no column of its own, all zeros
                    onehot[i, k] = 1.0
            parts.append(onehot)
        return torch.from_numpy(np.concatenate(parts, axis=1).astype(np.float32))

    def __call__(self, split: TableSplit) -> Split:
        """``split`` encoded: a ``Split`` of N×F float32 features and its labels."""
        return Split(self.encode(split.numeric, split.categorical), split.y)

    def encode_rows(self, rows: Iterable[Mapping[str, object]]) -> Tensor:
        """New rows (dicts column -> value, e.g. from ``csv.DictReader``) as network input.

        >>> enc = Encoding(["x"], [2.0], [1.0], ["c"], [["a", "b"]], ["no", "yes"])
        >>> enc.encode_rows([{"x": "3", "c": "b"}, {"x": 2, "c": "z"}]).tolist()
        [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
        """
        numeric, categorical = [], []
        for i, row in enumerate(rows):
            missing = [c for c in (*self.numeric, *self.categorical) if c not in row]
            if missing:
                raise BadValueError(
                    f"row {i} has no column {missing[0]!r}; every row needs "
                    f"{', '.join(self.numeric + self.categorical)}"
                )
            numeric.append([_number(row[c], i, c) for c in self.numeric])
            categorical.append([str(row[c]).strip() for c in self.categorical])
        n = len(numeric)
        num = np.array(numeric, dtype=np.float64).reshape(n, len(self.numeric))
        cat = np.array(categorical, dtype=object).reshape(n, len(self.categorical))
        return self.encode(num, cat)

    def to_dict(self) -> dict:
        """JSON-ready: ``{"numeric": [...], "mean": [...], ..., "features": [...]}``."""
        return {
            "numeric": self.numeric,
            "mean": self.mean,
            "std": self.std,
            "categorical": self.categorical,
            "categories": self.categories,
            "classes": self.classes,
            "target": self.target,
            "features": self.features,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Encoding:
        """The encoding ``to_dict`` wrote (``features`` is derived, so it is not read back)."""
        try:
            return cls(**{k: v for k, v in data.items() if k != "features"})
        except TypeError as err:
            raise BadValueError(f"not a grownet tabular encoding: {err}") from None


def _number(value: object, row: int, column: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadValueError(f"row {row}, column {column!r}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise BadValueError(f"row {row}, column {column!r} is {value!r}; give a finite number")
    return number


def load_encoding(run_dir: str | Path) -> Encoding:
    """The tabular encoding a run was trained with, from its ``dataset.json``.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "dataset.json").write_text(json.dumps({"encoding": Encoding(["x"], [0.0], [1.0]).to_dict()}))
    >>> load_encoding(d).numeric
    ['x']
    """  # noqa: E501
    path = Path(run_dir) / "dataset.json"
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataFileError(path, f"is not valid JSON ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("encoding"), dict):
        raise DataFileError(path, "holds no tabular encoding (the run's data was not a table)")
    return Encoding.from_dict(data["encoding"])
