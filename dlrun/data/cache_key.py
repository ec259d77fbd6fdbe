"""The key of a data cache entry: a hash of every input that changes the prepared arrays, and nothing else
(see cache.py for the entries themselves). No TensorFlow here.

- the `data:` settings the source reads (SETTINGS): for images image_size, color, normalize; the
  file names (x/y, keys) or the target column; test_split, validation, limit and the data seed
  (not the experiment seed, which no data step uses); the task;
- the preprocessing code itself: a digest of every module of `dlrun.data` (code_fingerprint), so an
  edit to decoding, resizing or splitting is never served stale arrays; and the versions of the
  libraries that decode and resize (numpy, OpenCV, h5py), and the cache's format;
- the resolved source path and, for every source file, its size and mtime in nanoseconds (the quick
  check make and rsync trust). Single files up to CONTENT_HASH_LIMIT are also hashed by content,
  which costs nothing and catches a same-size rewrite within one clock tick. Big files and the files
  of an image folder are not: reading thousands of images or a large array just to hash them would
  cost as much I/O as the decode the cache saves.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from dlrun._version import __version__
from dlrun.config.schema import DataConfig
from dlrun.data.sources import FASHION_FILES, IDX_NAME, keras_cache_dir

FORMAT_VERSION = 2
CONTENT_HASH_LIMIT = 1 << 20  # bytes
DATA_PACKAGE = Path(__file__).resolve().parent
IMAGE_SETTINGS = ("image_size", "color", "normalize")
SPLIT_SETTINGS = ("source", "test_split", "validation", "limit", "seed")
SETTINGS = {  # the data settings each cached source reads; nothing else enters the key
    "npy": (*IMAGE_SETTINGS, "x", "y"), "npz": (*IMAGE_SETTINGS, "keys"), "h5": (*IMAGE_SETTINGS, "keys"),
    "idx": IMAGE_SETTINGS, "mnist": IMAGE_SETTINGS, "fashion_mnist": IMAGE_SETTINGS, "folder": IMAGE_SETTINGS,
    "csv": ("target", "normalize", "categorical"),
}
DECODERS = {"opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless",
                       "opencv-contrib-python"), "h5py": ("h5py",)}


@functools.cache
def code_fingerprint(package: Path = DATA_PACKAGE) -> str:
    """A digest of the source of every module of the data package: loading, preprocessing, splitting."""
    digest = hashlib.sha256()
    for module in sorted(package.glob("*.py")):
        digest.update(module.name.encode() + b"\0" + module.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def library_versions() -> dict[str, str]:
    """Versions of the libraries that decode and resize the data (numpy, OpenCV, h5py), read from the
    installed package metadata, so OpenCV is not imported just to build a key."""
    from importlib import metadata

    versions = {"numpy": np.__version__}
    for library, distributions in DECODERS.items():
        versions[library] = "absent"
        for name in distributions:
            with contextlib.suppress(metadata.PackageNotFoundError):
                versions[library] = metadata.version(name)
                break
    return versions


def _idx_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.iterdir()) if IDX_NAME.match(p.name)] if folder.is_dir() else []


def source_files(cfg: DataConfig) -> tuple[Path, list[Path]] | None:
    """(source root, the files a load reads) for a single-file or idx source; None for an image
    folder (see folder_prints), a built-in source (synthetic, inline table) or when a file is
    missing (the loader then explains what is)."""
    path = Path(cfg.path).resolve() if cfg.path else None
    if cfg.source in ("mnist", "fashion_mnist") and path is None:
        cache = keras_cache_dir()
        if cfg.source == "mnist":
            path, files = cache / "mnist.npz", [cache / "mnist.npz"]
        else:
            path, files = cache / "fashion-mnist", [cache / "fashion-mnist" / n for n in FASHION_FILES]
    elif path is None or cfg.source in ("synthetic_digits", "table", "folder"):
        return None
    elif cfg.source == "npy":
        files = [path / cfg.x, path / cfg.y]
    elif path.is_dir():  # idx, or mnist / fashion_mnist given as an idx folder
        files = _idx_files(path)
    else:
        files = [path]
    if not files or not all(f.is_file() for f in files):
        return None
    return path, files


def folder_prints(root: Path) -> list[list[Any]]:
    """Name, size and mtime of everything in every class folder of an image folder (one scandir per
    folder and one stat per file: thousands of files cost milliseconds)."""
    with os.scandir(root) as it:
        classes = sorted(e.name for e in it if e.is_dir())
    prints: list[list[Any]] = []
    for name in classes:
        prints.append([name, "dir"])
        with os.scandir(root / name) as it:
            for entry in sorted(it, key=lambda e: e.name):
                try:
                    st = entry.stat()  # a link's target: retargeting a link is a change
                except OSError:  # a link loop or a dangling link, skipped when the folder is read
                    prints.append([f"{name}/{entry.name}", "broken"])
                    continue
                prints.append([f"{name}/{entry.name}", "dir" if entry.is_dir() else st.st_size, st.st_mtime_ns])
    return prints


def _file_print(file: Path, root: Path) -> list[Any]:
    st = file.stat()
    digest = ""
    if st.st_size <= CONTENT_HASH_LIMIT:
        digest = hashlib.blake2b(file.read_bytes(), digest_size=16).hexdigest()
    return [str(file.relative_to(root)) if file != root else file.name, st.st_size, st.st_mtime_ns, digest]


def key_settings(cfg: DataConfig) -> dict[str, Any]:
    """The `data:` settings that change the prepared arrays of this source (and so key its entry)."""
    return cfg.model_dump(mode="json", include={*SPLIT_SETTINGS, *SETTINGS.get(cfg.source, IMAGE_SETTINGS)})


def cache_key(cfg: DataConfig, task: str) -> str | None:
    """The entry key for loading `cfg`, or None when the source is not cached."""
    try:
        if cfg.source == "folder" and cfg.path:
            root = Path(cfg.path).resolve()
            prints = folder_prints(root)
        else:
            found = source_files(cfg)
            if found is None:
                return None
            root, files = found
            prints = [_file_print(f, root) for f in files]
    except OSError:
        return None  # missing or unreadable: let the loader report it
    if not prints:
        return None
    settings = key_settings(cfg)
    identity = {
        "format": FORMAT_VERSION, "dlrun": __version__, "code": code_fingerprint(), "libraries": library_versions(),
        "task": task, "root": str(root), "data": settings, "files": prints,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
