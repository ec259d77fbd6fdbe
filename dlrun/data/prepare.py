"""From RawData to model-ready arrays: label checks, image shape, colour, resize, scale; then the
splits (splits.py)."""

from __future__ import annotations

import numpy as np

from dlrun.config.schema import DataConfig
from dlrun.data.dataset import Dataset
from dlrun.data.features import FeatureStats, apply_feature_stats, fit_feature_stats
from dlrun.data.guard import check_prepared
from dlrun.data.sources import RawData
from dlrun.data.splits import Splits, split_data
from dlrun.errors import DataError
from dlrun.limits import MAX_CLASSES

MIN_IMAGE_SIDE = 4


def labels_to_int(y: np.ndarray, origin: str) -> np.ndarray:
    """Integer class labels from integer, float-integer or one-hot arrays; DataError otherwise."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        row_sums = y.sum(axis=1)
        if not (np.all((y == 0) | (y == 1)) and np.all(row_sums == 1)):
            raise DataError(f"{origin}: 2-D labels must be one-hot (one 1 per row), shape {y.shape}")
        return y.argmax(axis=1).astype(np.int64)
    y = y.reshape(-1) if y.ndim == 2 else y
    if y.ndim != 1:
        raise DataError(f"{origin}: labels must be 1-D integers or 2-D one-hot, got shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            odd = y[~(y == np.round(y))][:3]
            raise DataError(f"{origin}: labels must be whole numbers for classification (found {odd})")
    elif y.dtype.kind not in "iub":
        raise DataError(f"{origin}: labels must be numbers, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise DataError(f"{origin}: label {int(y.min())} is out of range; class labels start at 0")
    if y.size and y.max() >= MAX_CLASSES:  # before anything allocates a list, a count or a row per class
        raise DataError(f"{origin}: label {int(y.max()):,} would make {int(y.max()) + 1:,} classes, more than "
                        f"{MAX_CLASSES:,}; labels number the classes 0, 1, 2, ... (or set task: regression)")
    return y


def check_array(a: np.ndarray, origin: str, what: str) -> None:
    """An array of examples: at least one dimension (one example per row) and real numbers; a complex
    array would be trained on its real part, a 0-d one holds no examples."""
    if a.ndim == 0:
        raise DataError(f"{origin}: the {what} are a single value (a 0-d array); expected one row per example")
    if a.dtype.kind == "c":
        raise DataError(f"{origin}: the {what} are complex numbers ({a.dtype}); dlrun would keep only their real "
                        "part, so save the real (or magnitude) values you mean as a float array")


def to_images(x: np.ndarray, cfg: DataConfig, origin: str, keep_bytes: bool = False) -> np.ndarray:
    """N x H x W x C float32 images in the configured colour, size and scale.

    With `keep_bytes`, uint8 pixels that would be scaled to [0, 1] stay uint8 (a quarter of the
    memory): the input pipeline divides each batch by 255 in float32 (engine/pipeline.py), the very
    values this function would have made. Anything else is float32 as without it.

    Avoids copies: a writable float32 input is scaled in place (the caller hands its array over),
    and colour conversion and resizing fill one preallocated array, image by image.
    """
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise DataError(f"{origin}: expected images shaped (N, H, W) or (N, H, W, C), got {x.shape}")
    if x.shape[-1] == 4:
        x = x[..., :3]
    if min(x.shape[1:3]) < MIN_IMAGE_SIDE:
        raise DataError(f"{origin}: images are {x.shape[1]}x{x.shape[2]} pixels, too small (at least "
                        f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}); check data.x or data.keys point at images")
    channels = 1 if cfg.color == "grayscale" else 3
    size = tuple(cfg.image_size) if cfg.image_size else tuple(x.shape[1:3])
    if x.shape[-1] != channels or size != tuple(x.shape[1:3]):
        x = _convert(x, channels, size)
    if keep_bytes and scales_bytes(x, cfg):
        return x
    out = x.astype(np.float32, copy=False)
    if cfg.normalize is True and out.size and float(out.max()) > 1.0:
        if out.flags.writeable:
            np.divide(out, np.float32(255.0), out=out)
        else:
            out = out / np.float32(255.0)
    return out


def scales_bytes(x: np.ndarray, cfg: DataConfig) -> bool:
    """True when images are uint8 pixels that preparation scales to [0, 1] (normalize: true and a
    value above 1): such images are kept as bytes and scaled per batch."""
    return x.dtype == np.uint8 and cfg.normalize is True and bool(x.size) and int(x.max()) > 1


def _convert(x: np.ndarray, channels: int, size: tuple[int, int]) -> np.ndarray:
    """Colour-convert (first) and resize each image into one preallocated array."""
    from dlrun.data.images import cv2 as opencv

    cv2 = opencv()
    h, w = size
    out = np.empty((len(x), h, w, channels), x.dtype)
    for i, img in enumerate(x):
        img = np.ascontiguousarray(img)
        if img.shape[-1] != channels:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if channels == 1 else np.repeat(img, 3, axis=-1)
        if tuple(img.shape[:2]) != (h, w):
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        out[i] = img.reshape(h, w, channels)
    return out


def check_lengths(x: np.ndarray, y: np.ndarray, origin: str) -> None:
    """X and Y must have one label per example."""
    if len(x) != len(y):
        raise DataError(f"{origin}: X has {len(x)} examples but Y has {len(y)} labels; they must match")
    if len(x) == 0:
        raise DataError(f"{origin}: no examples")


def check_finite(x: np.ndarray, origin: str, split: str) -> None:
    """Features and targets must be finite numbers: a NaN would only surface as a diverged run."""
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        first = int(np.flatnonzero(bad)[0])
        raise DataError(f"{origin}: {int(bad.sum())} {split} example(s) hold NaN or infinite values (the first is "
                        f"#{first}); clean or drop them before training")


def prepared_shape(x: np.ndarray, cfg: DataConfig) -> tuple[int, ...]:
    """The shape of one prepared example: a table row as it is; an image resized to data.image_size
    in the configured colour (an array that is not images keeps its own shape: to_images refuses it)."""
    if cfg.source in ("csv", "table") or x.ndim not in (3, 4):
        return tuple(x.shape[1:])
    size = tuple(cfg.image_size) if cfg.image_size else tuple(x.shape[1:3])
    return (*size, 1 if cfg.color == "grayscale" else 3)


def prepared_itemsize(x: np.ndarray, cfg: DataConfig) -> int:
    """Bytes per prepared value: 1 for uint8 pixels kept as bytes (see to_images), else 4 (float32).
    Decided from the dtype alone (before the data is scanned): a uint8 image array that turns out not
    to be scaled is checked again as float32 once prepared."""
    images = cfg.source not in ("csv", "table") and x.ndim in (3, 4)
    return 1 if images and x.dtype == np.uint8 and cfg.normalize is True else 4


def origin_of(cfg: DataConfig) -> str:
    """A short name of where the data came from, for error messages."""
    return cfg.path or cfg.source


def prepare(raw: RawData, cfg: DataConfig, task: str, feature_stats: FeatureStats | None = None) -> Dataset:
    """Shape, scale, split and cap RawData according to `cfg`.

    Takes ownership of raw's arrays: images are scaled and split in place where possible, so the
    splits are views of one buffer and preparing never holds two copies of the data. A table's
    features are encoded and scaled after the split, with statistics fitted on the training split
    (or `feature_stats`, a run's own).
    """
    origin = origin_of(cfg)
    for a, what in ((raw.x_train, "features"), (raw.y_train, "labels"), (raw.x_test, "test features"),
                    (raw.y_test, "test labels")):
        if a is not None:
            check_array(np.asarray(a), origin, what)
    check_lengths(raw.x_train, raw.y_train, origin)
    n = len(raw.x_train) + (len(raw.x_test) if raw.x_test is not None else 0)
    check_prepared(origin, n, prepared_shape(raw.x_train, cfg), prepared_itemsize(raw.x_train, cfg))
    if raw.x_test is not None and raw.y_test is not None:
        check_lengths(raw.x_test, raw.y_test, f"{origin} (test split)")
    classify = task == "classification"
    tabular = cfg.source in ("csv", "table")

    def features(x: np.ndarray) -> np.ndarray:
        return x if tabular else to_images(x, cfg, origin, keep_bytes=True)

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
    s = split_data(x_train, y_train, x_test, y_test, cfg, classify, origin)
    num_classes = None
    if classify:
        num_classes = int(max(y.max() for y in (s.y_train, s.y_test, s.y_val) if y is not None and y.size)) + 1
        if raw.class_names:
            num_classes = max(num_classes, len(raw.class_names))
    stats = _encode_table(s, raw.columns, cfg, origin, feature_stats) if tabular else None
    return Dataset(s.x_train, s.y_train, s.x_val, s.y_val, s.x_test, s.y_test, num_classes, raw.class_names,
                   [*raw.notes, *s.notes], test_is_train=s.x_test is None, splits=s.table(), feature_stats=stats)


def _encode_table(s: Splits, columns: list[str] | None, cfg: DataConfig, origin: str,
                  feature_stats: FeatureStats | None) -> FeatureStats:
    """Encode and scale each split's table cells in place (statistics from the training split, or the
    given ones); validation on the test split stays the very same array."""
    columns = columns or [f"x{j}" for j in range(s.x_train.shape[1])]
    stats = feature_stats or fit_feature_stats(s.x_train, columns, cfg.categorical, cfg.normalize)
    val_is_test = s.x_val is not None and s.x_val is s.x_test
    s.x_train = apply_feature_stats(columns, s.x_train, stats, origin, "training row")
    if s.x_test is not None:
        s.x_test = apply_feature_stats(columns, s.x_test, stats, origin, "test row")
    if val_is_test:
        s.x_val = s.x_test
    elif s.x_val is not None:
        s.x_val = apply_feature_stats(columns, s.x_val, stats, origin, "validation row")
    return stats
