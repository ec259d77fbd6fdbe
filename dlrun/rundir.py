"""Run directories: artifact names in one place, atomic writes, never-overwritten directories."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlrun.errors import RunDirError

DEFAULT_RUNS_ROOT = Path("runs")

# Every artifact file name dlrun writes, and nothing else, lives here.
CONFIG = "config.yaml"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
MODEL = "model.keras"
WEIGHTS = "weights.weights.h5"
HISTORY_PLOT = "history.png"
MODEL_TXT = "model.txt"
EVAL = "eval.json"
CONFUSION_PLOT = "confusion.png"
TRANSFER = "transfer.json"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_STATE = "state.npz"
CHECKPOINT_BEST = "best.npz"
CHECKPOINT_META = "checkpoint.json"
# sweeps
SWEEP_SPEC = "sweep.yaml"
SWEEP_RESULTS = "results.csv"
SWEEP_BEST = "best.yaml"
SWEEP_HEATMAP = "heatmap.png"
SWEEP_TRIALS = "trials"

METRIC_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
STATUSES = ("running", "completed", "interrupted", "diverged", "failed")
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: files made by mkstemp (mode 0600) get the usual permissions back
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class RunDir:
    """A run directory and the paths of its artifacts."""

    path: Path

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_DIR

    def exists(self, name: str) -> bool:
        """True when artifact `name` has been written."""
        return (self.path / name).exists()

    def read_summary(self) -> dict[str, Any]:
        """The parsed summary.json; RunDirError when missing or unreadable."""
        return read_json(self.path / SUMMARY)


def timestamp() -> str:
    """Local time as YYYYmmdd-HHMMSS, the suffix of run directory names."""
    return time.strftime("%Y%m%d-%H%M%S")


def safe_name(name: str) -> str:
    """`name` if it is safe as one path component (no separators, no `..`); RunDirError otherwise."""
    if not _SAFE_NAME.match(name) or ".." in name:
        raise RunDirError(f"run name {name!r} is not a safe directory name; use letters, digits, '_', '-', '.'")
    return name


def create_run_dir(name: str, root: Path | str = DEFAULT_RUNS_ROOT, explicit: Path | str | None = None) -> RunDir:
    """Create a fresh run directory: `explicit` if given (must not exist or be empty), else
    `root/<name>-<timestamp>[-N]`. Creation is exclusive (os.mkdir), so concurrent processes
    never share a directory."""
    try:
        return _create_run_dir(name, Path(root), explicit)
    except OSError as exc:  # e.g. a read-only disk, or a file where a folder should be
        raise RunDirError(f"cannot create a run directory: {exc.strerror or exc} ({exc.filename or root}); "
                          "choose a writable --runs or --run-dir") from None


def _create_run_dir(name: str, root: Path, explicit: Path | str | None) -> RunDir:
    if explicit is not None:
        path = Path(explicit)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path)  # exclusive: of two processes creating it, one wins
            return RunDir(path)
        except FileExistsError:
            pass
        if not path.is_dir() or any(path.iterdir()):
            raise RunDirError(f"{path} already exists and is not empty; runs are never overwritten. "
                              "Choose another --run-dir or remove it.")
        return RunDir(path)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{safe_name(name)}-{timestamp()}"
    for n in range(0, 10_000):
        path = root / (base if n == 0 else f"{base}-{n}")
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        return RunDir(path)
    raise RunDirError(f"could not create a run directory under {root}")


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
    on unless the file is rewritten durably later anyway (each fsync can cost milliseconds)."""
    path = Path(path)
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
    """Parse a JSON object file; RunDirError naming the file when missing or invalid."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path}: not found") from None
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object")
    return data


def write_csv(path: Path | str, columns: list[str], rows: list[dict[str, Any]], durable: bool = True) -> None:
    """Write rows as CSV atomically (see atomic_path for `durable`); missing values are left empty."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    write_text(path, buf.getvalue(), durable)


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


def find_run_dir(target: Path | str) -> RunDir:
    """A RunDir for an existing run directory; RunDirError when `target` is not one."""
    path = Path(target)
    if not path.is_dir():
        raise RunDirError(f"{path}: not a directory; expected a run directory written by `dlrun train`")
    if not (path / CONFIG).is_file():
        raise RunDirError(f"{path}: not a run directory (no {CONFIG}); expected one written by `dlrun train`")
    return RunDir(path)
