"""Table features: cells parsed as numbers (a bad cell named by row, column and value), string
columns one-hot encoded, and per-feature scaling (standardize, minmax) fitted on the training split.

The statistics are plain JSON (stored in the run directory as names.FEATURES); `apply_feature_stats`
is the one function that turns raw table rows into model inputs with them: training, evaluate and
predict all call it, so an input is prepared the same way everywhere.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.errors import DataError
from dlrun.limits import format_bytes, memory_budget

FeatureStats = dict[str, Any]  # {"columns", "categories", "normalize", "inputs", "center", "scale"}
SCALINGS = ("standardize", "minmax")
CSV_TEXT_FACTOR = 16  # a cell read as a Python string takes about this many times its bytes in the file


def read_csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the rows (as text) of a CSV file; DataError for a file that is not one, or one
    whose rows would not fit the memory budget as text (about CSV_TEXT_FACTOR times the file)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from None
    if size * CSV_TEXT_FACTOR > memory_budget():
        raise DataError(f"{path}: a {format_bytes(size)} CSV needs about {format_bytes(size * CSV_TEXT_FACTOR)} "
                        f"to read as a table, more than the memory budget ({format_bytes(memory_budget())}); "
                        "save the features as .npy/.h5 arrays instead, or raise DLRUN_MEMORY_BUDGET")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:  # a byte-order mark names no column
            table = [row for row in csv.reader(fh) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV with a header row ({exc})") from None
    if len(table) < 2:
        raise DataError(f"{path}: needs a header row and at least one row of values")
    columns = [c.strip() for c in table[0]]
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        where = "; ".join(f"'{c}' is columns {', '.join(str(i + 1) for i, n in enumerate(columns) if n == c)}"
                          for c in twice)
        raise DataError(f"{path}: the header names two columns alike ({where}); give each column its own name")
    for line, row in enumerate(table[1:], start=2):
        if len(row) != len(columns):
            raise DataError(f"{path}: line {line} has {len(row)} values but the header has {len(columns)} columns")
    return columns, table[1:]


def parse_column(values: Sequence[Any], column: str, origin: str, first_row: int = 1, what: str = "row") -> np.ndarray:
    """A column of cells as float64; DataError naming the first cell that is not a finite number."""
    try:
        out = np.array([float(v) for v in values], np.float64)
        if np.all(np.isfinite(out)):
            return out
    except (TypeError, ValueError):
        pass
    for i, value in enumerate(values):
        try:
            ok = math.isfinite(float(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            shown = "an empty cell" if str(value).strip() == "" else f"'{value}'"
            raise DataError(f"{origin}: {what} {i + first_row}, column '{column}': {shown} is not a number; fix the "
                            "value, drop the row, or list the column in data.categorical if it holds categories")
    raise AssertionError("unreachable")


def table_cells(columns: list[str], rows: Sequence[Sequence[Any]], categorical: Sequence[str], origin: str,
                first_row: int = 1, what: str = "row") -> np.ndarray:
    """The cells as an (N, columns) array: float32 when every column is numeric, else an object array
    with numbers (float) in numeric columns and stripped text in categorical ones."""
    missing = [c for c in categorical if c not in columns]
    if missing:
        raise DataError(f"{origin}: data.categorical names {', '.join(missing)}, not a column (columns: "
                        f"{', '.join(columns)})")
    cells = np.asarray(rows, dtype=object).reshape(len(rows), len(columns))
    out = np.empty(cells.shape, np.float32 if not categorical else object)
    for j, column in enumerate(columns):
        if column in categorical:
            out[:, j] = [str(v).strip() for v in cells[:, j]]
        else:
            out[:, j] = parse_column(cells[:, j], column, origin, first_row, what)
    return out


def fit_feature_stats(x_train: np.ndarray, columns: list[str], categorical: Sequence[str],
                      normalize: bool | str) -> FeatureStats:
    """Categories and scaling statistics from the training split only."""
    categories = {c: sorted({str(v) for v in x_train[:, columns.index(c)]}) for c in columns if c in categorical}
    stats: FeatureStats = {"columns": list(columns), "categories": categories,
                           "normalize": normalize if normalize in SCALINGS else None}
    stats["inputs"] = [f"{c}={v}" for c in columns for v in categories.get(c, [])] + \
        [c for c in columns if c not in categories]
    encoded = _encode(x_train, stats, "training split")
    center, scale = np.zeros(encoded.shape[1]), np.ones(encoded.shape[1])
    if stats["normalize"] == "standardize":
        center, scale = encoded.mean(axis=0), encoded.std(axis=0)
    elif stats["normalize"] == "minmax":
        center, scale = encoded.min(axis=0), encoded.max(axis=0) - encoded.min(axis=0)
    scale = np.where(scale > 0, scale, 1.0)  # a constant feature stays put instead of dividing by 0
    stats.update(center=center.tolist(), scale=scale.tolist())
    return stats


def _encode(cells: np.ndarray, stats: FeatureStats, origin: str, what: str = "row") -> np.ndarray:
    """Numeric columns as they are, then one-hot blocks, in the order of stats['inputs']."""
    columns, categories = stats["columns"], stats["categories"]
    blocks = []
    for column, values in categories.items():
        index = {v: k for k, v in enumerate(values)}
        codes = []
        for i, v in enumerate(cells[:, columns.index(column)]):
            code = index.get(str(v).strip())
            if code is None:
                raise DataError(f"{origin}: {what} {i + 1}, column '{column}': category '{v}' was not in the training "
                                f"split ({', '.join(values)}); use one of those, or retrain with data that has it")
            codes.append(code)
        blocks.append(np.eye(len(values))[codes].reshape(len(cells), len(values)))
    numeric = [j for j, c in enumerate(columns) if c not in categories]
    blocks.append(np.asarray(cells[:, numeric], np.float64).reshape(len(cells), len(numeric)))
    return np.concatenate(blocks, axis=1)


def apply_feature_stats(columns: list[str], rows: Sequence[Sequence[Any]] | np.ndarray, stats: FeatureStats,
                        origin: str, what: str = "row") -> np.ndarray:
    """Model inputs (float32, one row per input) from raw table rows, prepared as the run's training data.

    Args:
        columns: The names of the columns of `rows` (any order; extra columns such as the target are ignored).
        rows: Cells as text or numbers, one list per row (e.g. read_csv_rows' rows).
        stats: The run's feature statistics (names.FEATURES in the run directory, or fit_feature_stats).
        origin: The file or split named in errors.
        what: How a row is called in errors (errors count rows from 1).

    Returns:
        An (N, len(stats['inputs'])) float32 array: one-hot categories and numbers, scaled.

    Raises:
        DataError: a missing column, a cell that is not a number, or a category the training split lacked.
    """
    missing = [c for c in stats["columns"] if c not in columns]
    if missing:
        raise DataError(f"{origin}: no column {', '.join(repr(c) for c in missing)}; the model takes the columns "
                        f"{', '.join(stats['columns'])}")
    rows = np.asarray(rows, dtype=object).reshape(len(rows), len(columns))
    picked = rows[:, [columns.index(c) for c in stats["columns"]]]
    cells = table_cells(stats["columns"], picked.tolist(), list(stats["categories"]), origin, 1, what)
    encoded = _encode(cells, stats, origin, what)
    return ((encoded - np.asarray(stats["center"])) / np.asarray(stats["scale"])).astype(np.float32)
