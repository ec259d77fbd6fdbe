"""On-disk cache of prepared data sets, so decoding, resizing and normalising happen once per
source version and preprocessing settings. No TensorFlow here.

An entry is one file under `$DLRUN_CACHE/data/` (default `~/.cache/dlrun/data/`): a JSON header
and the raw arrays (see write_entry), named by a key that hashes every input that changes the arrays,
and nothing else:
- the `data:` settings the source reads (SETTINGS): for images image_size, color, normalize; the
  file names (x/y, keys) or the target column; test_split, validation, limit and the data seed
  (not the experiment seed, which no data step uses); the task;
- the preprocessing code itself: a digest of every module of `dlrun.data` (code_fingerprint), so an
  edit to decoding, resizing or splitting is never served stale arrays; and the versions of the
  libraries that decode and resize (numpy, OpenCV, h5py), and this cache's format;
- the resolved source path and, for every source file, its size and mtime in nanoseconds (the quick
  check make and rsync trust). Single files up to CONTENT_HASH_LIMIT are also hashed by content,
  which costs nothing and catches a same-size rewrite within one clock tick. Big files and the files
  of an image folder are not: reading thousands of images or a large array just to hash them would
  cost as much I/O as the decode the cache saves.

Entries are written to a temporary file and renamed into place (os.replace), so a reader sees a
whole entry or none. Reading checks the stored key, every array's length and CRC-32; a damaged,
truncated or foreign entry reads as a miss and is rebuilt. No fsync: a lost entry is only a miss.
Not .npz: numpy writes zip members through a full in-memory copy and reads them through another,
which would double the peak memory of the very loads the cache is for.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
import time
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dlrun._version import __version__
from dlrun.config.schema import DataConfig
from dlrun.data.mapped import Rows
from dlrun.data.sources import FASHION_FILES, IDX_NAME, keras_cache_dir
from dlrun.limits import memory_budget

CACHE_ENV = "DLRUN_CACHE"
FORMAT_VERSION = 2
CONTENT_HASH_LIMIT = 1 << 20  # bytes
MAGIC = b"DLRUN-DATA-CACHE-1\n"
ALIGN = 64
READ_CHUNK = 4 << 20  # bytes read, then checked while the next chunk is read
TEMP_SUFFIX = ".tmp"
STALE_SECONDS = 3600
MAP_FRACTION = 0.25  # examples above this share of the memory budget are memory-mapped, not read
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


def cache_dir() -> Path:
    """Where entries live: `$DLRUN_CACHE/data`, default `~/.cache/dlrun/data`."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "dlrun")
    return Path(root) / "data"


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


def map_threshold() -> int:
    """Bytes of examples (x arrays) above which a cache entry is memory-mapped rather than read into
    memory: a quarter of the memory budget (dlrun.limits), leaving the rest to the model and TensorFlow."""
    return int(memory_budget() * MAP_FRACTION)


def entry_path(key: str) -> Path:
    """The file of the entry for `key`."""
    return cache_dir() / f"{key}.bin"


def read_entry(key: str, map_over: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """(arrays, meta) of a sound entry; None when missing, damaged or not the entry for `key`.

    Each array is read straight into its final buffer (no intermediate copy) and its CRC-32 checked.
    When the examples (the x_* arrays) together hold more than `map_over` bytes, they are
    memory-mapped read-only instead (np.memmap: pages come from the file as batches are gathered,
    engine/pipeline.py), after their CRC-32 is checked through a small buffer. An entry shorter than
    its header says (truncated by another process) is a miss, found from its size before any read.
    """
    path = entry_path(key)
    try:
        with open(path, "rb", buffering=0) as fh, ThreadPoolExecutor(1) as checker:
            if fh.read(len(MAGIC)) != MAGIC:
                return None
            size = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(size))
            if header.get("key") != key:
                return None
            start, arrays, checks = _aligned(len(MAGIC) + 8 + size), {}, []
            specs = header["arrays"]
            if os.fstat(fh.fileno()).st_size < start + max((s["offset"] + _nbytes(s) for s in specs), default=0):
                return None  # truncated: never mapped, whose missing pages would fault while training
            examples = sum(_nbytes(s) for s in specs if s["name"].startswith("x_"))
            mapped = map_over is not None and examples > map_over
            for spec in specs:
                if mapped and spec["name"].startswith("x_") and _nbytes(spec):
                    checked: Future[int | None] = Future()
                    checked.set_result(_crc_of(fh, start + spec["offset"], _nbytes(spec)))
                    checks.append((checked, spec["crc32"]))
                    arrays[spec["name"]] = np.memmap(path, np.dtype(spec["dtype"]), "r", start + spec["offset"],
                                                     tuple(spec["shape"]))
                    continue
                array = np.empty(spec["shape"], np.dtype(spec["dtype"]))
                fh.seek(start + spec["offset"])
                checks.append((_read_into(fh, memoryview(array).cast("B"), checker), spec["crc32"]))
                arrays[spec["name"]] = array
            if not all(crc is not None and crc.result() == expected for crc, expected in checks):
                return None
    except (OSError, ValueError, KeyError, TypeError):  # missing, truncated, or a damaged header
        return None
    meta = {**header["meta"], "crc32": {spec["name"]: spec["crc32"] for spec in header["arrays"]}}
    return (arrays, meta) if "x_train" in arrays else None


def _nbytes(spec: dict[str, Any]) -> int:
    return int(np.prod(spec["shape"], dtype=np.int64)) * np.dtype(spec["dtype"]).itemsize


def _crc_of(fh: Any, offset: int, nbytes: int) -> int | None:
    """The CRC-32 of `nbytes` of `fh` from `offset`, read through one READ_CHUNK buffer (so checking
    a mapped array costs no memory); None when the file ends early."""
    buffer = memoryview(bytearray(min(READ_CHUNK, nbytes)))
    fh.seek(offset)
    crc, left = 0, nbytes
    while left:
        n = fh.readinto(buffer[:min(left, len(buffer))])
        if not n:
            return None
        crc, left = zlib.crc32(buffer[:n], crc), left - n
    return crc


def _read_into(fh: Any, buffer: memoryview, checker: ThreadPoolExecutor) -> Future[int] | None:
    """Fill `buffer` from `fh` chunk by chunk while `checker` computes the CRC-32 of each chunk read
    (zlib and file reads release the GIL, so on two cores checking costs almost no extra time).
    The CRC of the whole buffer, or None when the file ends early."""
    crc: Future[int] = checker.submit(int)  # 0
    for offset in range(0, len(buffer), READ_CHUNK):
        chunk, got = buffer[offset:offset + READ_CHUNK], 0
        while got < len(chunk):
            n = fh.readinto(chunk[got:])
            if not n:
                return None
            got += n
        crc = checker.submit(lambda c=chunk, prev=crc: zlib.crc32(c, prev.result()))
    return crc


def write_entry(key: str, arrays: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write an entry atomically (temporary file, then os.replace). Raises OSError.

    Layout: MAGIC, the header length (8 bytes), a JSON header (key, meta, and each array's dtype,
    shape, offset and CRC-32), then from the next 64-byte boundary the raw arrays, each aligned.
    Arrays are written from their own memory: no serialised copy is ever built; `Rows` are gathered
    chunk by chunk, twice (their CRC-32 goes in the header, before them).
    """
    arrays = {name: a if isinstance(a, Rows) else np.ascontiguousarray(a) for name, a in arrays.items()}
    specs, offset = [], 0
    for name, a in arrays.items():  # offsets count from the first aligned byte after the header
        crc = a.crc32() if isinstance(a, Rows) else zlib.crc32(a)
        specs.append({"name": name, "dtype": a.dtype.str, "shape": list(a.shape), "crc32": crc,
                      "offset": offset})
        offset = _aligned(offset + a.nbytes)
    header = json.dumps({"key": key, "meta": meta, "arrays": specs}).encode()
    start = _aligned(len(MAGIC) + 8 + len(header))
    path = entry_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC + len(header).to_bytes(8, "little") + header)
            for spec, a in zip(specs, arrays.values(), strict=True):
                fh.seek(start + spec["offset"])
                for chunk in a.chunks() if isinstance(a, Rows) else [a]:
                    fh.write(memoryview(chunk).cast("B"))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path


def _remove_stale_temps(folder: Path) -> None:
    """Delete temporaries left by writers killed mid-write (older than STALE_SECONDS, so never one
    that another process is still writing)."""
    now = time.time()
    for temp in folder.glob(f".*{TEMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            if now - temp.stat().st_mtime > STALE_SECONDS:
                temp.unlink()


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN
