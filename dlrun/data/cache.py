"""On-disk cache of prepared data sets, so decoding, resizing and normalising happen once per
source version and preprocessing settings. No TensorFlow here.

An entry is one file under `$DLRUN_CACHE/data/` (default `~/.cache/dlrun/data/`): a JSON header
and the raw arrays (see write_entry), named by a key that hashes every input that changes the arrays,
and nothing else (cache_key.py).

Entries are written to a temporary file and renamed into place (os.replace), so a reader sees a
whole entry or none. Reading checks the stored key, every array's length and CRC-32; a damaged,
truncated or foreign entry reads as a miss and is rebuilt. No fsync: a lost entry is only a miss.
Not .npz: numpy writes zip members through a full in-memory copy and reads them through another,
which would double the peak memory of the very loads the cache is for.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.data.mapped import Rows
from dlrun.limits import memory_budget

CACHE_ENV = "DLRUN_CACHE"
MAGIC = b"DLRUN-DATA-CACHE-1\n"
ALIGN = 64
READ_CHUNK = 4 << 20  # bytes read, then checked while the next chunk is read
TEMP_SUFFIX = ".tmp"
STALE_SECONDS = 3600
MAP_FRACTION = 0.25  # examples above this share of the memory budget are memory-mapped, not read
def cache_dir() -> Path:
    """Where entries live: `$DLRUN_CACHE/data`, default `~/.cache/dlrun/data`."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "dlrun")
    return Path(root) / "data"


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
            # held until the rename: `dlrun cache clear` removes a temporary file only when no writer holds it
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            fh.write(MAGIC + len(header).to_bytes(8, "little") + header)
            for spec, a in zip(specs, arrays.values(), strict=True):
                fh.seek(start + spec["offset"])
                for chunk in a.chunks() if isinstance(a, Rows) else [a]:
                    fh.write(memoryview(chunk).cast("B"))
            fh.flush()
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
