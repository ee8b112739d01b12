"""Tables for classification: ``csv:PATH?target=COLUMN`` and scikit-learn's embedded tables.

A CSV file is read with Python's ``csv`` module (text only: nothing in it can run). The first
row names the columns; ``target`` names the label column, every other column is a feature. A
column whose every cell is a number is numeric (standardised), any other is categorical
(one-hot); both are fitted on the training split only (``grownet.data.encoding``). Labels may
be text or integers and become class indices in sorted order; the mapping is saved with the
run. Missing values, non-integer numeric labels and a single class are mistakes, reported in
one line naming the file, the line and the column.

The file ships no test split: a fixed stratified quarter of its rows is the test set (the same
whatever the seed, like scikit-learn digits'). ``iris``, ``wine`` and ``breast_cancer`` are
scikit-learn's embedded tables, split the same way: offline demos of tabular growth searches.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from grownet.data.dirs import require_file
from grownet.data.encoding import Encoding, TableSplit
from grownet.data.preprocess import Preprocess, recipe
from grownet.data.sources import Raw
from grownet.data.splits import fixed_test_split
from grownet.errors import DataFileError

__all__ = ["SKLEARN_TABLES", "class_labels", "read_csv_table", "read_sklearn_table"]

# Cells that mean "no value" in the files people export (pandas writes "", R writes "NA",
# UCI files use "?"). Matched without regard to case.
_MISSING = {"", "na", "n/a", "nan", "null", "?"}
# A text column with this many distinct values (and more than half the rows distinct) is an
# identifier or free text: one-hot encoding it would make one column per row.
_MAX_CATEGORIES = 100

SKLEARN_TABLES = {
    # name: (scikit-learn loader, title)
    "iris": ("load_iris", "iris (scikit-learn)"),
    "wine": ("load_wine", "wine (scikit-learn)"),
    "breast_cancer": ("load_breast_cancer", "breast cancer Wisconsin (scikit-learn)"),
}


def class_labels(values: Sequence[str], where: str | Path, what: str) -> tuple[Tensor, tuple]:
    """Class indices of label cells and the class names, in sorted order.

    Integers (``"3"``, ``"3.0"``) sort as numbers; anything else is text. Labels that are
    non-integer numbers are a regression target, and one class is no classification: both
    raise ``DataFileError(where, ...)``; ``what`` names the labels in the message.

    >>> y, classes = class_labels(["red", "blue", "red"], "t.csv", "column 'c'")
    >>> y.tolist(), classes
    ([1, 0, 1], ('blue', 'red'))
    >>> class_labels(["10", "9", "10"], "t.csv", "column 'c'")[1]
    ('9', '10')
    """
    numbers = [_float(v) for v in values]
    if all(n is not None for n in numbers):
        fractional = next((v for v, n in zip(values, numbers, strict=True) if n != int(n)), None)
        if fractional is not None:
            raise DataFileError(
                where,
                f"{what} holds non-integer numbers such as {fractional!r}: a regression target; "
                "grownet classifies, so give integer or text class labels",
            )
        order = sorted({int(n) for n in numbers})
        names = tuple(str(v) for v in order)
        index = {v: k for k, v in enumerate(order)}
        y = [index[int(n)] for n in numbers]
    else:
        names = tuple(sorted(set(values)))
        index = {v: k for k, v in enumerate(names)}
        y = [index[v] for v in values]
    if len(names) < 2:
        shown = names[0] if names else "none"
        raise DataFileError(
            where, f"{what} holds one class only ({shown!r}); a classifier needs two or more"
        )
    return torch.tensor(y, dtype=torch.int64), names


def _float(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_csv_table(path: Path, target: str) -> Raw:
    """A CSV file's rows as a ``Raw`` of ``TableSplit`` (encoded once the splits are final).

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = f.write_text("size,colour,label\\n" + "1,red,a\\n2,blue,b\\n" * 4)
    >>> raw = read_csv_table(f, "label")
    >>> len(raw.train), len(raw.test), raw.classes, raw.train.categorical_names
    (6, 2, ('a', 'b'), ('colour',))
    """
    header, rows, lines = _read_rows(path)
    if target not in header:
        raise DataFileError(
            path,
            f"has no column {target!r} (its columns: {', '.join(header)}); name the label "
            "column with ?target=COLUMN",
        )
    features = [c for c in header if c != target]
    if not features:
        raise DataFileError(path, f"has no feature columns besides the target {target!r}")
    columns = {name: [row[j] for row in rows] for j, name in enumerate(header)}
    for name, cells in columns.items():
        for cell, line in zip(cells, lines, strict=True):
            if cell.lower() in _MISSING:
                raise DataFileError(
                    path,
                    f"line {line}, column {name!r} is missing ({cell!r}); missing values are "
                    "not supported: fill them in or drop those rows",
                )
    y, classes = class_labels(columns[target], path, f"the target column {target!r}")
    numeric, categorical = [], []
    for name in features:
        values = [_float(c) for c in columns[name]]
        if all(v is not None for v in values):
            numeric.append((name, values))
            continue
        bad = next(c for c, v in zip(columns[name], values, strict=True) if v is None)
        if bad.strip().lower().lstrip("+-") in ("inf", "infinity"):
            raise DataFileError(path, f"column {name!r} holds {bad!r}; give finite numbers")
        distinct = len(set(columns[name]))
        if distinct > _MAX_CATEGORIES and distinct > len(rows) / 2:
            raise DataFileError(
                path,
                f"column {name!r} is text with {distinct} distinct values in {len(rows)} rows "
                "(an identifier or free text?); drop it or turn it into numbers",
            )
        categorical.append((name, columns[name]))
    table = _table(numeric, categorical, y)
    keep, test = fixed_test_split(y)
    return Raw(
        table.subset(keep),
        table.subset(test),
        classes,
        str(path.parent),
        {path.name: path.stat().st_size},
        f"grownet CSV reader (csv module), target {target!r}; fixed stratified 25% test split",
        family="features",
        finish=encode_finish(classes, target),
    )


def _read_rows(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows (cells stripped) and each row's line number; shape mistakes named."""
    require_file(path, "a CSV file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataFileError(path, "is not UTF-8 text; save the table as a UTF-8 CSV") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, lines = [], []
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):  # blank lines carry no row
                rows.append([cell.strip() for cell in row])
                lines.append(reader.line_num)
    except csv.Error as err:
        raise DataFileError(path, f"line {reader.line_num} is not valid CSV ({err})") from None
    if not rows:
        raise DataFileError(path, "is empty; a CSV needs a header row and data rows")
    header, rows, lines = rows[0], rows[1:], lines[1:]
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
        raise DataFileError(
            path, f"has one column {header[0]!r}: not comma-separated; save it with commas"
        )
    unnamed = [j + 1 for j, name in enumerate(header) if not name]
    if unnamed:
        raise DataFileError(path, f"column {unnamed[0]} has no name in the header row; name it")
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise DataFileError(path, f"names column {twice[0]!r} twice; column names must differ")
    for row, line in zip(rows, lines, strict=True):
        if len(row) != len(header):
            raise DataFileError(
                path,
                f"line {line} has {len(row)} cells, the header {len(header)}; every row "
                "needs one cell per column",
            )
    if len(rows) < 4:
        raise DataFileError(path, f"has {len(rows)} data rows; a train/test split needs more")
    return header, rows, lines


def _table(
    numeric: list[tuple[str, list]], categorical: list[tuple[str, list]], y: Tensor
) -> TableSplit:
    n = len(y)
    num = np.array([v for _, v in numeric], dtype=np.float64).T.reshape(n, len(numeric))
    cat = np.array([v for _, v in categorical], dtype=object).T.reshape(n, len(categorical))
    return TableSplit(num, cat, y, tuple(c for c, _ in numeric), tuple(c for c, _ in categorical))


def encode_finish(classes: Sequence[str], target: str | None):
    """The ``Raw.finish`` of a table: fit the encoding on the final training split alone."""

    def finish(
        train: TableSplit, val: TableSplit | None, test: TableSplit, preprocessing: str
    ) -> tuple:
        encoding = Encoding.fit(train, classes=classes, target=target)
        encoded_val = None if val is None else encoding(val)
        pre: Preprocess = recipe("features", preprocessing)
        return encoding(train), encoded_val, encoding(test), pre, {"encoding": encoding.to_dict()}

    return finish


def read_sklearn_table(name: str) -> Raw:
    """scikit-learn's embedded ``iris``, ``wine`` or ``breast_cancer`` (offline), with a fixed
    stratified 25% test split.

    >>> raw = read_sklearn_table("wine")
    >>> len(raw.train), len(raw.test), len(raw.classes), raw.train.numeric.shape[1]
    (134, 44, 3, 13)
    """
    if name not in SKLEARN_TABLES:
        raise ValueError(f"name must be one of {tuple(SKLEARN_TABLES)}, got {name!r}")
    import sklearn.datasets

    loader, _ = SKLEARN_TABLES[name]
    bunch = getattr(sklearn.datasets, loader)()
    y = torch.from_numpy(bunch.target.astype(np.int64))
    names = tuple(str(f) for f in bunch.feature_names)
    table = TableSplit(bunch.data.astype(np.float64), np.zeros((len(y), 0), dtype=object), y, names)
    keep, test = fixed_test_split(y)
    classes = tuple(str(c) for c in bunch.target_names)
    return Raw(
        table.subset(keep),
        table.subset(test),
        classes,
        None,
        reader=f"sklearn.datasets.{loader}; fixed stratified 25% test split",
        family="features",
        finish=encode_finish(classes, None),
    )
