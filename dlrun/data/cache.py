"""On-disk cache of prepared data sets, so decoding, resizing and normalising happen once per
source version and preprocessing settings. No TensorFlow here.

An entry is one uncompressed .npz under `$DLRUN_CACHE/data/` (default `~/.cache/dlrun/data/`),
named by a key that hashes every input of `load_dataset`:
- the whole `data:` section except what no file source reads (download, the synthetic-digit and
  inline-table settings): image_size, color, normalize, keys, x/y, target, test_split, validation,
  limit, seed; the task and the seed; dlrun's version and this cache's format;
- the resolved source path and, for every source file, its size and mtime in nanoseconds (the quick
  check make and rsync trust). Single files up to CONTENT_HASH_LIMIT are also hashed by content,
  which costs nothing and catches a same-size rewrite within one clock tick. Big files and the files
  of an image folder are not: reading thousands of images or a large array just to hash them would
  cost as much I/O as the decode the cache saves.

Entries are written to a temporary file and renamed into place (os.replace), so a reader sees a
whole entry or none. Reading checks every member's CRC-32 (zip) and the stored key; a damaged,
truncated or foreign entry reads as a miss and is rebuilt. No fsync: a lost entry is only a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from dlrun import __version__
from dlrun.data.sources import FASHION_FILES, IDX_NAME, keras_cache_dir
from dlrun.schema import DataConfig

CACHE_ENV = "DLRUN_CACHE"
FORMAT_VERSION = 1
CONTENT_HASH_LIMIT = 1 << 20  # bytes
META_KEY = "__meta__"
NOT_FOR_FILES = {"download", "style", "n_train", "n_test", "table"}  # settings no file source reads


def cache_dir() -> Path:
    """Where entries live: `$DLRUN_CACHE/data`, default `~/.cache/dlrun/data`."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "dlrun")
    return Path(root) / "data"


def _idx_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.iterdir()) if IDX_NAME.match(p.name)] if folder.is_dir() else []


def source_files(cfg: DataConfig) -> tuple[Path, list[Path]] | None:
    """(source root, the files a load reads) for a file-backed source; None when the source is
    built in (synthetic, inline table) or a file is missing (the loader then explains what is)."""
    path = Path(cfg.path).resolve() if cfg.path else None
    if cfg.source in ("mnist", "fashion_mnist") and path is None:
        cache = keras_cache_dir()
        if cfg.source == "mnist":
            path, files = cache / "mnist.npz", [cache / "mnist.npz"]
        else:
            path, files = cache / "fashion-mnist", [cache / "fashion-mnist" / n for n in FASHION_FILES]
    elif path is None or cfg.source in ("synthetic_digits", "table"):
        return None
    elif cfg.source == "npy":
        files = [path / cfg.x, path / cfg.y]
    elif cfg.source == "folder":
        files = _folder_entries(path)
    elif path.is_dir():  # idx, or mnist / fashion_mnist given as an idx folder
        files = _idx_files(path)
    else:
        files = [path]
    if not files or not all(f.exists() for f in files):
        return None
    return path, files


def _folder_entries(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    return classes + [f for c in classes for f in sorted(c.iterdir())]


def _file_print(file: Path, root: Path, hash_small: bool) -> list[Any]:
    st = file.stat()
    name = str(file.relative_to(root)) if file != root else file.name
    if file.is_dir():
        return [name, "dir"]
    digest = ""
    if hash_small and st.st_size <= CONTENT_HASH_LIMIT:
        digest = hashlib.blake2b(file.read_bytes(), digest_size=16).hexdigest()
    return [name, st.st_size, st.st_mtime_ns, digest]


def cache_key(cfg: DataConfig, task: str, seed: int) -> str | None:
    """The entry key for loading `cfg`, or None when the source is not cached."""
    found = source_files(cfg)
    if found is None:
        return None
    root, files = found
    hash_small = cfg.source != "folder"
    try:
        prints = [_file_print(f, root, hash_small) for f in files]
    except OSError:
        return None  # unreadable: let the loader report it
    identity = {
        "format": FORMAT_VERSION, "dlrun": __version__, "task": task, "seed": seed, "root": str(root),
        "data": cfg.model_dump(mode="json", exclude=NOT_FOR_FILES), "files": prints,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def entry_path(key: str) -> Path:
    """The file of the entry for `key`."""
    return cache_dir() / f"{key}.npz"


def read_entry(key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """(arrays, meta) of a sound entry; None when missing, damaged or not the entry for `key`."""
    path = entry_path(key)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        meta = json.loads(str(arrays.pop(META_KEY)))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError):
        return None
    if not isinstance(meta, dict) or meta.get("key") != key or "x_train" not in arrays:
        return None
    return arrays, meta


def write_entry(key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write an entry atomically (temporary file, then os.replace). Raises OSError."""
    path = entry_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp.npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays, **{META_KEY: np.array(json.dumps({**meta, "key": key}))})
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path
