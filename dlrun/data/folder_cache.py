"""An image folder too big to prepare in memory, prepared straight into its data cache entry (issue 29).

When a folder's uint8 pixels exceed the share of the memory budget that a cache entry is memory-mapped
above (cache.map_threshold), the first pass never holds them: worker processes decode the images
(images.decode_all) into a temporary .npy in the cache folder, memory-mapped, its pages released as
they are written; the splits are computed on row numbers (splits.split_data, as for arrays in
memory, so the same rows land in the same splits); each split is then gathered from the temporary
file chunk by chunk into the entry (mapped.Rows); and the entry is memory-mapped for training. The
disk space is reserved up front (posix_fallocate), so a full disk is an error naming the folder, not
a crash halfway through a mapped write; a folder that changes while it is read is refused before
anything is cached; the temporary file is removed whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from dlrun.config.schema import DataConfig
from dlrun.data import cache, cache_admin, cache_key, images
from dlrun.data.mapped import Rows, release_pages
from dlrun.data.prepare import labels_to_int, origin_of
from dlrun.data.sources import folder_files
from dlrun.data.splits import split_data
from dlrun.errors import DataError
from dlrun.limits import format_bytes

Progress = Callable[[str, int, int], None]


def streams(cfg: DataConfig) -> bool:
    """True when `cfg` is an image folder whose pixels, as bytes, exceed cache.map_threshold(): it is
    prepared into its cache entry without being held in memory (an estimate from the file count)."""
    if cfg.source != "folder" or not cfg.path or cfg.normalize is not True or not cfg.image_size:
        return False
    with contextlib.suppress(OSError):
        files = sum(len(os.listdir(entry.path)) for entry in os.scandir(cfg.path) if entry.is_dir())
        height, width = cfg.image_size
        return files * height * width * (1 if cfg.color == "grayscale" else 3) > cache.map_threshold()
    return False


def build(cfg: DataConfig, task: str, key: str, progress: Progress | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decode the folder, split it and write its cache entry `key`, holding no more than a few chunks
    of images; returns the entry as cache.read_entry does (its examples memory-mapped).

    Raises:
        DataError: no readable images, the folder changed while it was read, or the cache folder
            cannot hold the entry (full, read-only).
    """
    root, classes, files, skipped = folder_files(cfg)
    height, width = cfg.image_size or (0, 0)
    rgb = cfg.color != "grayscale"
    shape = (len(files), height, width, 3 if rgb else 1)
    folder = cache.cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.pixels.", suffix=cache.TEMP_SUFFIX, dir=folder)
    os.close(fd)
    try:
        pixels, labels, count, brightest = _decode(tmp, shape, files, rgb, root, skipped, progress)
        if not count:
            raise DataError(f"{root}: no readable images in {len(classes)} class folder(s)")
        if brightest <= 1:  # not scaled by preparation: the in-memory path keeps such images as floats
            raise DataError(f"{root}: every pixel is 0 or 1; set data.normalize: false for such images")
        if cache_key.cache_key(cfg, task) != key:
            raise DataError(f"{root}: its files changed while dlrun read them, so what was read may mix old and "
                            "new files; nothing was cached. Run again once the data stops changing")
        arrays, meta = _splits(cfg, task, pixels[:count], labels[:count], classes, skipped, root)
        try:
            cache_admin.write_with_progress(key, arrays, meta, progress)
        except OSError as exc:
            raise _no_room(exc, sum(a.nbytes for a in arrays.values())) from None
        del pixels, arrays
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    entry = cache.read_entry(key, map_over=0)
    if entry is None:
        raise DataError(f"{cache.entry_path(key)}: the data cache entry just written cannot be read back; "
                        f"check the disk under {cache.cache_dir()}")
    return entry


def _decode(tmp: str, shape: tuple[int, ...], files: list[tuple[int, Any]], rgb: bool, root: Any,
            skipped: Any, progress: Progress | None) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Decode every file into the memory-mapped .npy `tmp` (its space reserved first); (pixels,
    labels, images decoded, brightest pixel)."""
    try:
        pixels = np.lib.format.open_memmap(tmp, "w+", np.uint8, shape)
        with open(tmp, "r+b") as fh:
            os.posix_fallocate(fh.fileno(), 0, os.path.getsize(tmp))
    except OSError as exc:  # no room: found here, not as a fault in the middle of a mapped write
        raise _no_room(exc, int(np.prod(shape, dtype=np.int64))) from None
    labels = np.empty(len(files), np.int64)
    count = done = brightest = 0
    for chunk, decoded in images.decode_all([file for _, file in files], shape[1:3], rgb):
        kept = np.flatnonzero(decoded)
        pixels[count:count + len(kept)] = chunk[kept]
        labels[count:count + len(kept)] = [files[done + i][0] for i in kept]
        brightest = max(brightest, int(chunk.max(initial=0)))
        if len(kept) < len(decoded):
            skipped["not an image or unreadable"] += len(decoded) - len(kept)
        count, done = count + len(kept), done + len(decoded)
        release_pages(pixels)
        if progress is not None:
            progress(f"decoding {root} into the data cache", done, len(files))
    return pixels, labels, count, brightest


def _splits(cfg: DataConfig, task: str, pixels: np.ndarray, labels: np.ndarray, classes: list[str],
            skipped: Any, root: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The entry's arrays (each split's rows of `pixels`, as mapped.Rows) and meta, the splits made on row
    numbers exactly as prepare makes them on the arrays."""
    origin = origin_of(cfg)
    classify = task == "classification"
    y = labels_to_int(labels, origin) if classify else labels.astype(np.float32)
    s = split_data(np.arange(len(pixels)), y, None, None, cfg, classify, origin)
    val_is_test = s.x_val is not None and s.x_val is s.x_test
    rows = {"x_train": s.x_train, "y_train": s.y_train, "x_test": s.x_test, "y_test": s.y_test}
    if not val_is_test:
        rows.update(x_val=s.x_val, y_val=s.y_val)
    arrays = {name: Rows(pixels, index) if name.startswith("x_") else index
              for name, index in rows.items() if index is not None}
    num_classes = None
    if classify:
        num_classes = max(int(max(v.max() for v in (s.y_train, s.y_test, s.y_val) if v is not None and v.size)) + 1,
                          len(classes))
    notes = [images.describe_skipped(skipped, root)] if skipped else []
    meta = {"source": origin, "num_classes": num_classes, "class_names": classes, "notes": [*notes, *s.notes],
            "test_is_train": s.x_test is None, "val_is_test": val_is_test, "settings": cache_key.key_settings(cfg),
            "task": task, "splits": s.table(), "feature_stats": None}
    return arrays, meta


def _no_room(exc: OSError, nbytes: int) -> DataError:
    return DataError(f"{cache.cache_dir()}: cannot hold the {format_bytes(nbytes)} data cache entry of this image "
                     f"folder ({exc.strerror or exc}), which is too big to prepare in memory; set "
                     f"{cache.CACHE_ENV} to a folder with room, or raise DLRUN_MEMORY_BUDGET")
