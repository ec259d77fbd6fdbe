"""Data sources and preprocessing. `load_dataset` is the one entry point; no TensorFlow here."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from dlrun.config import LoadedConfig
from dlrun.config.checks import check_against_data
from dlrun.config.schema import DataConfig
from dlrun.data import cache, cache_admin, cache_key, folder_cache
from dlrun.data.classes import name_classes
from dlrun.data.dataset import ARRAYS, Dataset
from dlrun.data.features import FeatureStats, apply_feature_stats, read_csv_rows
from dlrun.data.prepare import origin_of, prepare
from dlrun.data.sources import load_raw
from dlrun.errors import DataError

__all__ = ["Dataset", "FeatureStats", "apply_feature_stats", "load_checked", "load_dataset", "read_csv_rows"]

Progress = Callable[[str, int, int], None]  # (what, done, total), e.g. a ui StepProgress


def load_dataset(cfg: DataConfig, task: str = "classification", use_cache: bool = True,
                 progress: Progress | None = None, feature_stats: FeatureStats | None = None,
                 map_over: int | None = None) -> Dataset:
    """Read and prepare the configured data set. Raises DataError for any data problem.

    File and folder sources are served from the data cache (data/cache.py) when an entry for these
    exact files, settings and preprocessing code exists, and stored there after a build; an entry
    whose examples exceed cache.map_threshold() is memory-mapped, and streamed batch by batch;
    `use_cache=False` bypasses it. The experiment seed plays no part: the data seed (`data.seed`)
    alone decides the splits. `progress` hears about long steps (decoding an image folder, writing
    the cache entry). `feature_stats` (a run's names.FEATURES) prepares a table with that run's
    columns, categories and scaling instead of statistics fitted on this training split. The classes are
    named (data/classes.py) after the cache: names are not data. `map_over` replaces cache.map_threshold()
    (a sweep whose worker processes would each hold a copy maps sooner), and a data set this call builds
    and caches whose examples exceed it is read back mapped from its new entry.
    """
    return name_classes(_load(cfg, task, use_cache, progress, feature_stats, map_over), cfg)


def _load(cfg: DataConfig, task: str, use_cache: bool, progress: Progress | None,
          feature_stats: FeatureStats | None, map_over: int | None = None) -> Dataset:
    key = cache_key.cache_key(cfg, task) if use_cache and feature_stats is None else None
    if key is None:
        return prepare(load_raw(cfg, progress), cfg, task, feature_stats)
    cache_admin.hold(cache.entry_path(key))  # in use by this process from now on: never evicted under it
    entry = cache.read_entry(key, map_over=cache.map_threshold() if map_over is None else map_over)
    if entry is not None:
        return _from_entry(*entry, "hit")
    damaged = cache.entry_path(key).exists()
    if folder_cache.streams(cfg):  # too big to prepare in memory: prepared into the entry, then mapped
        data = _from_entry(*folder_cache.build(cfg, task, key, progress), "miss")
        if damaged:
            data.notes.append(f"rebuilt a damaged data cache entry ({cache.entry_path(key)})")
        return data
    data = prepare(load_raw(cfg, progress), cfg, task)
    if cache_key.cache_key(cfg, task) != key:  # files changed while they were read: a mix of two versions
        raise DataError(f"{origin_of(cfg)}: its files changed while dlrun read them, so what was read may mix "
                        "old and new files; nothing was cached. Run again once the data stops changing")
    val_is_test = data.x_val is not None and data.x_val is data.x_test  # validation: test, stored once
    meta = {"source": origin_of(cfg), "num_classes": data.num_classes, "class_names": data.class_names,
            "notes": data.notes, "test_is_train": data.test_is_train, "val_is_test": val_is_test,
            "settings": cache_key.key_settings(cfg), "task": task,
            "splits": data.splits, "feature_stats": data.feature_stats}
    stored = [n for n in ARRAYS if not (val_is_test and n in ("x_val", "y_val"))]
    try:
        arrays = {n: a for n in stored if (a := getattr(data, n)) is not None}
        cache_admin.write_with_progress(key, arrays, meta, progress)
        data.cache = "miss"
        examples = sum(a.nbytes for n, a in arrays.items() if n.startswith("x_"))
        if map_over is not None and examples > map_over and (entry := cache.read_entry(key, map_over)) is not None:
            data = _from_entry(*entry, "miss")
    except OSError as exc:  # a read-only or full cache folder: this run goes on without the cache
        reason = {errno.EROFS: "is read-only", errno.EACCES: "is not writable", errno.ENOSPC: "has no space left",
                  errno.EDQUOT: "is over its disk quota"}.get(exc.errno or 0, f"cannot be written ({exc})")
        data.notes.append(f"data cache not written: {cache.cache_dir()} {reason}, so this run reads its data "
                          f"without the cache; set {cache.CACHE_ENV} to a writable folder, or use --no-cache")
    if damaged:
        data.notes.append(f"rebuilt a damaged data cache entry ({cache.entry_path(key)})")
    return data


def _from_entry(arrays: dict[str, Any], meta: dict[str, Any], state: str) -> Dataset:
    """The Dataset of a cache entry's arrays and meta (cache.read_entry); `state` is its `cache`."""
    if meta["val_is_test"]:
        arrays["x_val"], arrays["y_val"] = arrays["x_test"], arrays["y_test"]
    return Dataset(**{name: arrays.get(name) for name in ARRAYS}, num_classes=meta["num_classes"],
                   class_names=meta["class_names"], notes=meta["notes"], test_is_train=meta["test_is_train"],
                   cache=state, splits=meta["splits"], crc32=meta["crc32"], feature_stats=meta.get("feature_stats"))


def load_checked(lc: LoadedConfig, use_cache: bool = True, progress: Progress | None = None,
                 feature_stats: FeatureStats | None = None) -> Dataset:
    """Load the config's data (through the data cache unless `use_cache` is False; a table with a
    run's `feature_stats` when given) and run the config checks that need it (output units vs
    classes, image layers vs flat input), before anything is written. Raises DataError or ConfigError."""
    cfg = lc.config
    data = load_dataset(cfg.data, cfg.task, use_cache=use_cache, progress=progress, feature_stats=feature_stats)
    check_against_data(lc, data.input_shape, data.num_classes, len(data.x_train))
    return data
