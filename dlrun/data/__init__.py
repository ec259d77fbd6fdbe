"""Data sources and preprocessing. `load_dataset` is the one entry point; no TensorFlow here."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dlrun.data import cache
from dlrun.data.prepare import check_finite, check_lengths, labels_to_int, split_rows, stratified_split, to_images
from dlrun.data.sources import RawData, load_raw
from dlrun.errors import DataError
from dlrun.schema import DataConfig


@dataclass
class Dataset:
    """Model-ready arrays. Labels are integer classes (classification) or floats (regression)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    num_classes: int | None
    class_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    test_is_train: bool = False
    cache: str = "off"  # "hit", "miss" (built and stored) or "off" (not cached)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    def eval_split(self) -> tuple[np.ndarray, np.ndarray]:
        """The arrays final metrics are measured on: the test split, else the training data."""
        if self.x_test is not None and self.y_test is not None:
            return self.x_test, self.y_test
        return self.x_train, self.y_train

    def describe(self) -> str:
        """One line: sizes and shape."""
        n_test = 0 if self.x_test is None else len(self.x_test)
        n_val = 0 if self.x_val is None else len(self.x_val)
        classes = f", {self.num_classes} classes" if self.num_classes else ""
        return f"{len(self.x_train)} train / {n_val} val / {n_test} test, input {self.input_shape}{classes}"


def origin_of(cfg: DataConfig) -> str:
    """A short name of where the data came from, for error messages."""
    return cfg.path or cfg.source


def prepare(raw: RawData, cfg: DataConfig, task: str, seed: int) -> Dataset:
    """Shape, scale, split and cap RawData according to `cfg`.

    Takes ownership of raw's arrays: images are scaled and split in place where possible, so the
    splits are views of one buffer and preparing never holds two copies of the data.
    """
    origin = origin_of(cfg)
    check_lengths(raw.x_train, raw.y_train, origin)
    if raw.x_test is not None and raw.y_test is not None:
        check_lengths(raw.x_test, raw.y_test, f"{origin} (test split)")
    classify = task == "classification"
    tabular = cfg.source in ("csv", "table")

    def features(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float32) if tabular else to_images(x, cfg, origin)

    def targets(y: np.ndarray) -> np.ndarray:
        return labels_to_int(y, origin) if classify else np.asarray(y, np.float32).reshape(-1)

    x_train, y_train = features(raw.x_train), targets(raw.y_train)
    check_finite(x_train, origin, "training")
    check_finite(y_train, origin, "training")
    x_test = y_test = None
    if raw.x_test is not None and raw.y_test is not None:
        x_test, y_test = features(raw.x_test), targets(raw.y_test)
        check_finite(x_test, origin, "test")
        check_finite(y_test, origin, "test")
    elif cfg.test_split > 0:
        keep, held = stratified_split(y_train, cfg.test_split, seed=cfg.seed, stratify=classify)
        (x_train, x_test), y_train, y_test = split_rows(x_train, keep, held), y_train[keep], y_train[held]
    x_val = y_val = None
    if cfg.validation == "test":
        x_val, y_val = x_test, y_test
    else:
        keep, held = stratified_split(y_train, float(cfg.validation), seed=cfg.seed + 1, stratify=classify)
        (x_train, x_val), y_train, y_val = split_rows(x_train, keep, held), y_train[keep], y_train[held]
    if cfg.limit is not None and cfg.limit < len(x_train):
        pick = np.sort(np.random.default_rng(cfg.seed).permutation(len(x_train))[: cfg.limit])
        x_train, y_train = x_train[pick], y_train[pick]
    if len(x_train) == 0:
        raise DataError(f"{origin}: no training examples left after the test/validation split")
    for split, x, setting in (("test", x_test, f"test_split: {cfg.test_split}"),
                              ("validation", x_val, f"validation: {cfg.validation}")):
        if x is not None and len(x) == 0:
            raise DataError(f"{origin}: the {split} split is empty ({setting} of {len(x_train)} examples holds "
                            f"out none); raise data.{setting.split(':')[0]}, or use more data")

    num_classes = None
    if classify:
        num_classes = int(max(y.max() for y in (y_train, y_test, y_val) if y is not None and y.size)) + 1
        if raw.class_names:
            num_classes = max(num_classes, len(raw.class_names))
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, num_classes, raw.class_names,
                   list(raw.notes), test_is_train=x_test is None)


ARRAYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def load_dataset(cfg: DataConfig, task: str = "classification", seed: int = 0,
                 use_cache: bool = True) -> Dataset:
    """Read and prepare the configured data set. Raises DataError for any data problem.

    File and folder sources are served from the data cache (data/cache.py) when an entry for these
    exact files and settings exists, and stored there after a build; `use_cache=False` bypasses it.
    """
    key = cache.cache_key(cfg, task, seed) if use_cache else None
    if key is None:
        return prepare(load_raw(cfg), cfg, task, seed)
    entry = cache.read_entry(key)
    if entry is not None:
        arrays, meta = entry
        if meta["val_is_test"]:
            arrays["x_val"], arrays["y_val"] = arrays["x_test"], arrays["y_test"]
        return Dataset(**{name: arrays.get(name) for name in ARRAYS}, num_classes=meta["num_classes"],
                       class_names=meta["class_names"], notes=meta["notes"],
                       test_is_train=meta["test_is_train"], cache="hit")
    damaged = cache.entry_path(key).exists()
    data = prepare(load_raw(cfg), cfg, task, seed)
    val_is_test = data.x_val is not None and data.x_val is data.x_test  # validation: test, stored once
    meta = {"source": origin_of(cfg), "num_classes": data.num_classes, "class_names": data.class_names,
            "notes": data.notes, "test_is_train": data.test_is_train, "val_is_test": val_is_test}
    stored = [n for n in ARRAYS if not (val_is_test and n in ("x_val", "y_val"))]
    try:
        cache.write_entry(key, {n: a for n in stored if (a := getattr(data, n)) is not None}, meta)
        data.cache = "miss"
    except OSError as exc:
        data.notes.append(f"data cache not written ({exc}); set {cache.CACHE_ENV} to a writable folder, "
                          "or use --no-cache")
    if damaged:
        data.notes.append(f"rebuilt a damaged data cache entry ({cache.entry_path(key)})")
    return data
