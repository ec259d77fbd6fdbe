"""What `dlrun validate` learns about the data without loading it: the path exists and is of the kind
its source reads (a file or a folder), and the range of the labels, read from what is cheap: an idx
labels file (one byte a label), the labels array of an .npy pair, an .npz or an .h5 file (headers
first), an image folder's class folders (never an image), a csv's target column. Images are never
decoded and TensorFlow is never imported; what only loading can show is left to `dlrun train`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlrun.config.schema import DataConfig
from dlrun.data import guard, images
from dlrun.data.features import parse_column, read_csv_rows
from dlrun.data.named import KERAS_KEYS, match_names
from dlrun.data.prepare import labels_to_int
from dlrun.data.sources import IDX_NAME, keras_cache_dir, missing_keras_files
from dlrun.errors import DataError

# What validate cannot tell without reading every example: said in its output and the docs.
TRAIN_ONLY = ("whether every image decodes and its shape", "the input shape against the layers",
              "NaN or infinite values", "the memory the prepared arrays need", "the weights of a transfer or base")


@dataclass
class Peek:
    """What was read: `classes` is the largest label + 1 (classification), None when not known."""

    classes: int | None = None
    checked: list[str] = field(default_factory=list)


def peek_data(cfg: DataConfig, task: str) -> Peek:
    """Check the configured data path and read its label range cheaply.

    Args:
        cfg: The data section.
        task: classification or regression (only a classification's labels are read).

    Returns:
        A Peek with the label range (when read) and what was checked.

    Raises:
        DataError: the path is missing or of the wrong kind, or the labels cannot be read.
    """
    source = cfg.source
    classify = task == "classification"
    if source in ("synthetic_digits", "table"):
        if source == "table" and classify and cfg.table and cfg.target in cfg.table.columns:
            t = list(cfg.table.columns).index(cfg.target)
            return _labels([np.asarray(parse_column([r[t] for r in cfg.table.rows], cfg.target, "data.table"))],
                           "data.table", classify, f"the target column '{cfg.target}'")
        return Peek()
    if source in ("mnist", "fashion_mnist") and not cfg.path:
        missing = missing_keras_files(cfg)  # DataError unless present or data.download
        return Peek(checked=[f"{source} will be downloaded" if missing else f"{keras_cache_dir()} holds {source}"])
    path = Path(cfg.path or "")
    if source == "folder":
        guard.require(path, "image folder", "dir")
        skipped: Counter[str] = Counter()
        classes = images.class_folders(path, skipped)
        if not classes:
            raise DataError(f"{path}: no class sub-folders; expected one folder per class, e.g. {path}/0/img.png")
        return Peek(len(classes) if classify else None, [f"{path}: {len(classes)} class folders"])
    if source == "csv":
        guard.require(path, "csv file")
        columns, rows = read_csv_rows(path)
        if cfg.target not in columns:
            raise DataError(f"{path}: no column '{cfg.target}' (columns: {', '.join(columns)}); set data.target")
        t = columns.index(cfg.target)
        target = parse_column([row[t] for row in rows], cfg.target, str(path), 2, "line")
        return _labels([target], str(path), classify, f"the target column '{cfg.target}'")
    if source == "npy":
        guard.require(path, "npy folder", "dir")
        x_path, y_path = path / cfg.x, path / cfg.y
        x_shape, y_shape = guard.check_npy(x_path), guard.check_npy(y_path)
        if x_shape[:1] != y_shape[:1]:
            n_x, n_y = (shape[0] if shape else 1 for shape in (x_shape, y_shape))
            raise DataError(f"{path}: X has {n_x} examples but Y has {n_y} labels; they must match")
        return _labels([np.load(y_path, mmap_mode="r", allow_pickle=False)] if classify else [], str(y_path),
                       classify, "the labels")
    kind = "any" if source in ("mnist", "fashion_mnist") else ("dir" if source == "idx" else "file")
    guard.require(path, f"{source} {'folder' if kind == 'dir' else 'file'}", kind)
    if path.is_dir():
        return _labels(_idx_labels(path) if classify else [], str(path), classify, "the idx labels")
    keys = (KERAS_KEYS[1], KERAS_KEYS[3]) if source in ("mnist", "fashion_mnist") else (cfg.keys.y_train,
                                                                                         cfg.keys.y_test)
    read = _h5_labels if source == "h5" else _npz_labels
    return _labels(read(path, keys) if classify else [], str(path), classify, "the labels")


def _labels(arrays: list[np.ndarray], origin: str, classify: bool, what: str) -> Peek:
    if not classify or not arrays:
        return Peek(checked=[f"{origin}: found"])
    top = max(int(labels_to_int(np.asarray(y), origin).max(initial=-1)) for y in arrays)
    return Peek(top + 1, [f"{origin}: {what} run 0-{top}"])


def _idx_labels(folder: Path) -> list[np.ndarray]:
    """Every labels file of an idx folder (read, one byte a label); images files only looked for."""
    found = {(m["split"], m["kind"]) for entry in folder.iterdir() if (m := IDX_NAME.match(entry.name))}
    labels = []
    for entry in sorted(folder.iterdir()):
        match = IDX_NAME.match(entry.name)
        if match and match["kind"] == "labels" and (match["split"], "images") in found:
            labels.append(guard.read_idx(entry))
        elif match and match["kind"] == "images" and (match["split"], "labels") not in found:
            raise DataError(f"{folder}: found {entry.name} but no {match['split']}-labels-idx1-ubyte[.gz] beside it")
    if not labels:
        raise DataError(f"{folder}: no idx files (expected train-images-idx3-ubyte[.gz] and "
                        "train-labels-idx1-ubyte[.gz], or the t10k-* pair)")
    return labels


def _npz_labels(path: Path, keys: tuple[str, str]) -> list[np.ndarray]:
    guard.check_npz(path)  # headers against sizes and the budget first
    try:
        with np.load(path, allow_pickle=False) as npz:
            found = match_names(keys, list(npz.files), path, [])
            if keys[0] not in found:
                raise DataError(f"{path}: missing key {keys[0]}; the file has {', '.join(sorted(npz.files))}. "
                                f"Map it with data.keys, e.g. --set data.keys.y_train=NAME")
            return [npz[found[k]] for k in keys if k in found]
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None


def _h5_labels(path: Path, keys: tuple[str, str]) -> list[np.ndarray]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            stored = [k for k in f if isinstance(f[k], h5py.Dataset)]
            found = match_names(keys, stored, path, [])
            if keys[0] not in found:
                raise DataError(f"{path}: missing dataset {keys[0]}; the file has {', '.join(sorted(f.keys()))}. "
                                f"Map it with data.keys, e.g. --set data.keys.y_train=NAME")
            return [guard.read_h5(f[found[k]], path) for k in keys if k in found]
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from None
