"""The data cache as its user manages it: what it holds (`dlrun cache info`), removing every entry or
the old ones (`dlrun cache clear [--older-than DAYS]`), and a size cap, `DLRUN_CACHE_MAX` (e.g. 2G),
that evicts the least recently used entries after each write.

An entry a running process uses is never removed: the process holds a shared lock (flock) on it from
just before it reads or writes it until it exits, and removal takes an exclusive lock first and skips
an entry it cannot get. "Last used" is the entry's modification time, set when it is written and
each time a process reads it. No TensorFlow here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dlrun.config.schema import DataConfig
from dlrun.data import cache
from dlrun.errors import DataError

MAX_ENV = "DLRUN_CACHE_MAX"
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
_held: dict[str, int] = {}  # entry path -> the descriptor holding its shared lock (until the process ends)


@dataclass
class CacheEntry:
    """One entry: its key, file, size, when it was last used, where its data came from, and the
    `data:` settings it was prepared with (those that differ from the defaults in `changed`)."""

    key: str
    path: str
    size_bytes: int
    last_used: str
    source: str
    settings: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, Any] = field(default_factory=dict)
    in_use: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain data for --json."""
        return asdict(self)


def parse_size(text: str, origin: str = MAX_ENV) -> int:
    """`2G`, `500M`, `1.5GB`, `4096` -> bytes (K, M, G, T are powers of 1024). Raises DataError."""
    match = _SIZE.match(text)
    if not match:
        raise DataError(f"{origin}={text!r}: expected a size such as 500M, 2G or 1.5GB (bytes without a unit)")
    return int(float(match.group(1)) * UNITS[match.group(2).upper()])


def size_cap() -> int | None:
    """The cap from DLRUN_CACHE_MAX in bytes, or None when it is not set."""
    text = os.environ.get(MAX_ENV, "").strip()
    return parse_size(text) if text else None


def hold(path: Path) -> None:
    """Mark the entry at `path` in use by this process (a shared lock until the process ends) and as
    used now. Nothing when there is no such entry or the file system refuses."""
    key = str(path)
    if key in _held:
        with contextlib.suppress(OSError):
            os.utime(path)
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        if os.fstat(fd).st_ino != os.stat(path).st_ino:  # removed or replaced before the lock: not this one
            raise OSError("replaced")
        os.utime(path)
    except OSError:
        os.close(fd)
        return
    _held[key] = fd


def _remove(path: Path) -> bool:
    """Delete an entry (or a writer's temporary file) unless a process holds it; True when it was deleted.
    Raises OSError when the file system refuses (read-only, not this user's)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    try:
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)  # releases the lock


def in_use(path: Path) -> bool:
    """True when some process holds the entry at `path`."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def read_header(path: Path) -> dict[str, Any] | None:
    """An entry's JSON header (key, meta, arrays) without reading its arrays; None when unreadable."""
    try:
        with open(path, "rb") as fh:
            if fh.read(len(cache.MAGIC)) != cache.MAGIC:
                return None
            size = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(size))
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) else None


def _entry(path: Path) -> CacheEntry:
    st = path.stat()
    header = read_header(path) or {}
    meta = header.get("meta") if isinstance(header.get("meta"), dict) else {}
    settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
    defaults = DataConfig().model_dump(mode="json")
    changed = {k: v for k, v in settings.items() if k == "source" or defaults.get(k) != v}
    used = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(st.st_mtime))
    return CacheEntry(path.stem, str(path), st.st_size, used, str(meta.get("source", "(unreadable entry)")),
                      settings, changed, in_use(path))


def entry_files() -> list[Path]:
    """Every entry file, least recently used first."""
    folder = cache.cache_dir()
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("*.bin"):
        with contextlib.suppress(FileNotFoundError):
            found.append((path.stat().st_mtime, path))
    return [path for _, path in sorted(found)]


def cache_info() -> dict[str, Any]:
    """Where the cache is, its size and cap, and its entries (most recently used first)."""
    entries = [_entry(p) for p in reversed(entry_files()) if p.exists()]
    return {"location": str(cache.cache_dir()), "size_bytes": sum(e.size_bytes for e in entries),
            "max_bytes": size_cap(), "entries": [e.to_dict() for e in entries]}


def temp_files() -> list[Path]:
    """Temporary files of entry writers (cache.write_entry) in the cache: a killed writer leaves its own."""
    folder = cache.cache_dir()
    return sorted(folder.glob(f".*{cache.TEMP_SUFFIX}")) if folder.is_dir() else []


def clear(older_than_days: float | None = None) -> dict[str, Any]:
    """Remove every entry, or those not used for `older_than_days`, and every temporary file a killed writer
    left (a writer holds its own until it is renamed into place); entries in use stay. Returns what was
    removed and kept, and what could not be removed and why (`not_removed`: path, reason)."""
    cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
    removed = freed = busy = temps = 0
    refused: list[dict[str, str]] = []
    for path in [*entry_files(), *temp_files()]:
        try:
            st = path.stat()
            if cutoff is not None and st.st_mtime >= cutoff and not path.name.endswith(cache.TEMP_SUFFIX):
                continue
            if not _remove(path):
                busy += 1
            elif path.name.endswith(cache.TEMP_SUFFIX):
                temps, freed = temps + 1, freed + st.st_size
            else:
                removed, freed = removed + 1, freed + st.st_size
        except FileNotFoundError:
            continue
        except OSError as exc:
            refused.append({"path": str(path), "reason": _why(exc, path.parent)})
    return {"location": str(cache.cache_dir()), "removed": removed, "temp_files_removed": temps,
            "freed_bytes": freed, "in_use": busy, "left": len(entry_files()), "not_removed": refused}


def _why(exc: OSError, folder: Path) -> str:
    """Why a cache file could not be removed, and what to do."""
    if exc.errno == errno.EROFS:
        return f"{folder} is on a read-only file system; remount it writable, or point {cache.CACHE_ENV} elsewhere"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{folder} is not writable by this user; remove the files as their owner"
    return exc.strerror or type(exc).__name__


def after_write(path: Path) -> list[str]:
    """Hold the entry just written, then evict least recently used entries while the cache is over its
    cap (entries in use are skipped). Returns the removed files."""
    hold(path)
    cap = size_cap()
    if cap is None:
        return []
    files = entry_files()
    sizes = {p: p.stat().st_size for p in files if p.exists()}
    total, removed = sum(sizes.values()), []
    for victim in files:
        if total <= cap:
            break
        with contextlib.suppress(OSError):  # an entry the file system will not let go of: the next one
            if victim == path or not _remove(victim):
                continue
            total -= sizes.get(victim, 0)
            removed.append(str(victim))
    return removed


def write_with_progress(key: str, arrays: dict[str, Any], meta: dict[str, Any], progress: Any = None) -> Path:
    """cache.write_entry, telling `progress` (what, done, total in bytes) as it starts and ends, then
    `after_write` (hold the entry, keep the cache under its cap). Raises OSError as write_entry does."""
    total = int(sum(a.nbytes for a in arrays.values()))
    what = f"writing the data cache ({total / (1 << 20):.0f} MiB)"
    if progress is not None:
        progress(what, 0, total)
    path = cache.write_entry(key, arrays, meta)
    if progress is not None:
        progress(what, total, total)
    after_write(path)
    return path
