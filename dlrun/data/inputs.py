"""New inputs for `dlrun predict`: image files, image folders, .npy arrays and .csv feature rows, all
read and checked before anything is predicted, then prepared by `prepare_inputs` exactly as the
run's training data was prepared (same decoding, colour, resize interpolation and scaling)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.config.schema import DataConfig
from dlrun.data import guard, images
from dlrun.data.features import FeatureStats, apply_feature_stats, read_csv_rows
from dlrun.data.prepare import to_images
from dlrun.data.sources import load_array
from dlrun.errors import DataError

ARRAY_SUFFIX, TABLE_SUFFIX = ".npy", ".csv"


@dataclass(frozen=True)
class InputSpec:
    """How the run's training inputs were prepared (its inputs.json): images or a table, the shape of one
    prepared example, the data settings, the feature columns of a table, the class names, and a table's
    encoding and scaling (the run's features.json)."""

    kind: str
    task: str
    input_shape: tuple[int, ...]
    data: DataConfig
    features: list[str] | None = None
    class_names: list[str] | None = None
    feature_stats: FeatureStats | None = None

    @property
    def width(self) -> int:
        """Values in one raw table row (before one-hot encoding)."""
        return len(self.feature_stats["columns"]) if self.feature_stats else self.input_shape[0]

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> InputSpec:
        """The spec from an inputs.json record (data/classes.py `inputs_record`)."""
        size = record.get("image_size")
        data = DataConfig(source=record["source"], color=record["color"], normalize=record["normalize"],
                          image_size=tuple(size) if size else None)
        stats = record.get("feature_stats")  # its columns, in the order the run encoded them
        return cls(record["kind"], record["task"], tuple(record["input_shape"]), data,
                   stats["columns"] if stats else record.get("features"), record.get("class_names"), stats)

    def expected(self) -> str:
        """What one input must be, for error messages."""
        if self.kind == "table":
            names = ", ".join(self.features or []) or f"{self.width} values"
            return f"rows of {self.width} features ({names})"
        h, w, c = self.input_shape
        return f"images ({h}x{w}, {'grey' if c == 1 else 'RGB'}): image files or folders, or a .npy of (N, H, W[, C])"


@dataclass
class NewInputs:
    """Prepared inputs (model-ready, in order) and where each came from (a file, `file[i]`, `file:line`)."""

    x: np.ndarray
    sources: list[str]


def prepare_inputs(raw: np.ndarray, spec: InputSpec, origin: str) -> np.ndarray:
    """The run's preprocessing applied to new raw inputs: what data.prepare does to training examples.

    Images (N x H x W [x C], as a source reader returns them: 0-255 pixels or the array's own values)
    are converted to the run's colour, resized with INTER_AREA to its input size and scaled as its
    training data was; table rows (N x features, the run's feature columns in order) are one-hot encoded
    and scaled with the run's statistics (data.features.apply_feature_stats, as in training) and become
    float32. The one place predict prepares inputs.
    """
    if spec.kind == "table":
        rows = np.asarray(raw, object if spec.feature_stats else np.float32)
        if rows.ndim != 2 or rows.shape[1] != spec.width:
            raise DataError(f"{origin}: got {rows.shape[-1] if rows.ndim else 0} features per row; expected "
                            f"{spec.expected()}")
        if spec.feature_stats is None:  # a run from before features.json: its rows went in as they were
            return rows
        return apply_feature_stats(spec.feature_stats["columns"], rows, spec.feature_stats, origin)
    cfg = spec.data.model_copy(update={"image_size": spec.input_shape[:2]})
    return to_images(np.asarray(raw), cfg, origin)


def read_inputs(paths: list[str | Path], spec: InputSpec) -> NewInputs:
    """Read, check and prepare every input; DataError naming the first bad input and what was expected,
    before any input is predicted."""
    if not paths:
        raise DataError(f"no inputs given; expected {spec.expected()}")
    parts: list[np.ndarray] = []
    sources: list[str] = []
    for path in map(Path, paths):
        raw, names = _read_one(path, spec)
        x = prepare_inputs(raw, spec, str(path))
        _check_examples(x, path, spec)
        parts.append(x)
        sources += names
    return NewInputs(np.concatenate(parts), sources)


def _check_examples(x: np.ndarray, path: Path, spec: InputSpec) -> None:
    """At least one example, every value finite: a NaN input has no prediction (training refuses them too)."""
    if len(x) == 0:
        raise DataError(f"{path}: holds no examples; expected {spec.expected()}")
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if bad.any():
            raise DataError(f"{path}: {int(bad.sum())} of {len(x)} input(s) hold NaN or infinite values (the first "
                            f"is #{int(np.flatnonzero(bad)[0])}); predict needs finite numbers, as training does")


def _read_one(path: Path, spec: InputSpec) -> tuple[np.ndarray, list[str]]:
    """The raw examples one argument holds, and their sources."""
    guard.require(path, "input", "any")
    if path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.suffix.lower() in images.IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{path}: no image files in this folder; expected {spec.expected()}")
        return _images(files, spec, path.resolve()), [str(f) for f in files]
    suffix = path.suffix.lower()
    if suffix == ARRAY_SUFFIX:
        array = _array(path, spec)
        return array, [f"{path}[{i}]" for i in range(len(array))]
    if suffix == TABLE_SUFFIX:
        return _csv_rows(path, spec)
    if suffix in images.IMAGE_SUFFIXES:
        return _images([path], spec, path.resolve().parent), [str(path)]
    raise DataError(f"{path}: not an input dlrun reads (image file, image folder, .npy, .csv); expected "
                    f"{spec.expected()}")


def _images(files: list[Path], spec: InputSpec, root: Path) -> np.ndarray:
    """Image files decoded as an image folder's training images are (images.decode), 0-255 float32;
    each checked first as a folder's files are (images.why_skip: a decompression bomb, a FIFO, a device,
    a link loop), but refused instead of skipped. `root` names the input in a memory-budget refusal."""
    if spec.kind == "table":
        raise DataError(f"{files[0]}: an image, but this run was trained on a table; expected {spec.expected()}")
    h, w, c = spec.input_shape
    guard.check_prepared(str(root), len(files), spec.input_shape)
    out = np.empty((len(files), h, w, c), np.float32)
    for i, file in enumerate(files):
        reason = images.why_skip(file)
        decoded = images.decode(file, (h, w), c == 3) if reason is None else None
        if decoded is None:
            raise DataError(f"{file}: {reason or 'not an image or unreadable'}; expected {spec.expected()}")
        out[i] = decoded
    return out


def _array(path: Path, spec: InputSpec) -> np.ndarray:
    """A .npy of examples (or of one example), its header checked before it is read."""
    guard.check_npy(path)
    array = load_array(path)
    if array.dtype.kind not in "iufb":
        raise DataError(f"{path}: holds {array.dtype} values; expected numbers: {spec.expected()}")
    if spec.kind == "table":
        array = array[None] if array.ndim == 1 else array
        if array.ndim != 2 or array.shape[1] != spec.width:
            raise DataError(f"{path}: an array of shape {array.shape}; expected (N, {spec.width}) "
                            f"{spec.expected()}")
        return array
    h, w, _ = spec.input_shape
    single = array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4) and array.shape[:2] == (h, w))
    array = array[None] if single else array
    sized = spec.data.image_size is not None or (array.ndim in (3, 4) and array.shape[1:3] == (h, w))
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] not in (1, 3, 4)) or not sized:
        raise DataError(f"{path}: an array of shape {array.shape}; expected (N, {h}, {w}) or (N, {h}, {w}, C) "
                        f"{spec.expected()}")
    return array


def _csv_rows(path: Path, spec: InputSpec) -> tuple[np.ndarray, list[str]]:
    """Feature rows of a .csv with a header naming the run's features (other columns, the target among
    them, are ignored), read as training reads a csv (data.features.read_csv_rows: its size checked
    against the memory budget first); every cell a number, but a one-hot column's."""
    if spec.kind != "table" or not spec.features:
        raise DataError(f"{path}: a table, but this run was trained on images; expected {spec.expected()}")
    header, lines = read_csv_rows(path)  # the size checked against the memory budget before reading
    missing = [f for f in spec.features if f not in header]
    if missing:
        raise DataError(f"{path}: the header lacks the feature column(s) {', '.join(missing)}; expected a header "
                        f"row with {', '.join(spec.features)} (got {', '.join(header) or 'an empty file'})")
    columns = [header.index(f) for f in spec.features]
    text = set(spec.feature_stats["categories"]) if spec.feature_stats else set()  # one-hot: kept as text
    rows, sources = [], []
    for number, line in enumerate(lines, start=2):
        if not any(cell.strip() for cell in line):
            continue
        rows.append([line[i].strip() if header[i] in text else _number(line, i, path, number, header[i])
                     for i in columns])
        sources.append(f"{path}:{number}")
    if not rows:
        raise DataError(f"{path}: no rows under the header; expected {spec.expected()}")
    return np.array(rows, object if text else np.float64), sources


def _number(line: list[str], index: int, path: Path, number: int, column: str) -> float:
    cell = line[index].strip() if index < len(line) else ""
    try:
        value = float(cell)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise DataError(f"{path}: line {number}, column {column}: {cell!r} is not a finite number")
    return value
