"""Files as records: every write goes to a temporary name beside the target and is renamed into
place (os.replace), so a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dlrun.errors import RunDirError
from dlrun.limits import MAX_JSON_BYTES, file_kind, format_bytes

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: files made by mkstemp (mode 0600) get the usual permissions back


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_batches = threading.local()  # this thread's open durable_batch: the paths written in it, in order


@contextlib.contextmanager
def durable_batch() -> Iterator[None]:
    """Durable writes inside the block (this thread's) are made durable together when it ends: each file
    written fsynced once, in the order written, then each of their directories once, instead of a file and
    a directory fsync per write (each costs milliseconds: a run's start and end records are ten writes).
    Readers still see the old file or the new one, never half of one; what a power cut may lose is the
    block's writes, not a file torn. A block inside another joins it."""
    if getattr(_batches, "paths", None) is not None:
        yield
        return
    _batches.paths = paths = []
    try:
        yield
    finally:
        _batches.paths = None
        written = list(dict.fromkeys(paths))
        for path in written:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        for directory in dict.fromkeys(p.parent for p in written):
            _fsync_dir(directory)


def is_temp_file(name: str) -> bool:
    """True for the name of an `atomic_path` temporary file (never read; removed on resume)."""
    return name.startswith(".") and ".tmp" in name


def remove_temp_files(directory: Path | str) -> int:
    """Delete temporary files a killed process left under `directory`; returns how many."""
    removed = 0
    for path in Path(directory).rglob(".*"):
        if path.is_file() and is_temp_file(path.name):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed


@contextlib.contextmanager
def atomic_path(path: Path | str, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix) to write to; on success it is renamed
    over `path` with os.replace, so readers see the old file or the new one, never half of one.

    `durable` also fsyncs the file and its directory, so the new file survives a power cut; leave it
    on unless the file is rewritten durably later anyway (each fsync can cost milliseconds). Inside a
    `durable_batch`, both fsyncs wait for the end of the batch."""
    path = Path(path)
    batch: list[Path] | None = getattr(_batches, "paths", None) if durable else None
    if batch is not None:
        durable = False
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{''.join(path.suffixes)}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
        if durable:
            _fsync_dir(path.parent)
        elif batch is not None:
            batch.append(path)
    except OSError as exc:  # a full disk is met by a write or a close, often without a file name: name `path`
        if storage_problem(exc) is None or exc.filename == str(path):
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path: Path | str, text: str, durable: bool = True) -> None:
    """Write text atomically (see atomic_path for `durable`)."""
    with atomic_path(path, durable) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path | str, data: Any) -> None:
    """Write JSON atomically (indented, keys in insertion order)."""
    write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: Path | str) -> dict[str, Any]:
    """Parse a JSON object file; RunDirError naming the file when missing, not a file, far too big
    (MAX_JSON_BYTES), nested too deep or invalid."""
    path = Path(path)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise RunDirError(f"{path}: is {file_kind(st.st_mode)}, not a JSON file")
        if st.st_size > MAX_JSON_BYTES:
            raise RunDirError(f"{path}: unreadable JSON ({format_bytes(st.st_size)}; dlrun writes kilobytes)")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path}: not found") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise RunDirError(f"{path}: unreadable JSON ({str(exc)[:200] or type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object")
    return data


STORAGE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is exceeded",
                  errno.EROFS: "the file system is read-only"}


def storage_problem(exc: BaseException) -> str | None:
    """`no space left on the device` (or quota, read-only) when `exc` is such an OSError, else None."""
    return STORAGE_ERRNOS.get(exc.errno) if isinstance(exc, OSError) and exc.errno is not None else None


def write_csv(path: Path | str, columns: list[str], rows: list[dict[str, Any]], durable: bool = True) -> None:
    """Write rows as CSV atomically (see atomic_path for `durable`); missing values are left empty.
    Every text cell and column name that a spreadsheet would read as a formula is neutralised (csv_cell)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([csv_cell(c) for c in columns])
    for row in rows:
        writer.writerow([csv_cell(_csv_value(row.get(k))) for k in columns])
    write_text(path, buf.getvalue(), durable)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # OWASP: what makes a spreadsheet read a cell as a formula
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|nan)$")


def csv_cell(value: Any) -> Any:
    """A CSV cell safe to open in a spreadsheet (OWASP's CSV-injection rule): text that begins with
    =, +, -, @, a tab or a carriage return (a class name, an input file's name, a column name) gets a
    leading single quote, so it stays text; numbers, and text that is just a number (-0.5), are kept."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def read_csv(path: Path | str) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts of strings ([] when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
