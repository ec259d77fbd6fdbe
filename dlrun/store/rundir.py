"""Run directories: never overwritten, created exclusively, found and read back."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlrun.errors import RunDirError
from dlrun.store.files import read_json
from dlrun.store.names import CHECKPOINT_DIR, CONFIG, DEFAULT_RUNS_ROOT, SUMMARY

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


def find_run_dir(target: Path | str) -> RunDir:
    """A RunDir for an existing run directory; RunDirError when `target` is not one."""
    path = Path(target)
    if not path.is_dir():
        raise RunDirError(f"{path}: not a directory; expected a run directory written by `dlrun train`")
    if not (path / CONFIG).is_file():
        raise RunDirError(f"{path}: not a run directory (no {CONFIG}); expected one written by `dlrun train`")
    return RunDir(path)
