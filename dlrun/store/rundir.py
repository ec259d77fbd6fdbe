"""Run directories: never overwritten, created exclusively, found and read back."""

from __future__ import annotations

import os
import re
import time
import unicodedata
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


def check_path(path: Path | str, what: str) -> Path:
    """A directory given on the command line (--run-dir, --sweep-dir, --runs, --resume): clean text (no
    control characters, nothing undecodable) and no `..` that climbs back out of a folder it went into
    (`runs/../../x`), which would put the run somewhere other than where the path seems to point."""
    text = str(path)
    bad = next((ch for ch in text if unicodedata.category(ch) in ("Cc", "Cs")), None)
    if bad is not None:
        kind = "bytes that are not UTF-8" if unicodedata.category(bad) == "Cs" else f"the control character {bad!r}"
        raise RunDirError(f"{what} {text!r} holds {kind}; use a plain path")
    went_down = False
    for part in Path(text).parts:
        if part == ".." and went_down:
            raise RunDirError(f"{what} {text!r} goes into a folder and back out of it with '..'; write the path it "
                              f"means ({os.path.normpath(text)}) if that is really where it should go")
        went_down = went_down or part not in ("..", ".", os.sep)
    return Path(text)


def check_writable(explicit: Path | str | None, root: Path | str = DEFAULT_RUNS_ROOT,
                   option: str = "--run-dir") -> None:
    """Before any data is read: the folder a new run directory goes into (the parent of `explicit`, given
    as `option`, else `root`; the nearest one that exists) must be writable. RunDirError naming it otherwise."""
    target = check_path(explicit, option).parent if explicit is not None else check_path(root, "--runs")
    folder = next((p for p in (target, *target.parents) if p.exists()), Path("."))
    if os.access(folder, os.W_OK | os.X_OK):
        return
    try:
        reason = "is on a read-only file system" if os.statvfs(folder).f_flag & os.ST_RDONLY else "is not writable"
    except OSError:
        reason = "is not writable"
    raise RunDirError(f"{folder} {reason}: dlrun cannot write a run there; choose a writable --runs or --run-dir")


def create_run_dir(name: str, root: Path | str = DEFAULT_RUNS_ROOT, explicit: Path | str | None = None) -> RunDir:
    """Create a fresh run directory: `explicit` if given (must not exist or be empty, nor be a symlink),
    else `root/<name>-<timestamp>[-N]`. Creation is exclusive (os.mkdir), so concurrent processes
    never share a directory."""
    check_path(root, "--runs")
    if explicit is not None:
        check_path(explicit, "the run directory")
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
        if path.is_symlink():
            raise RunDirError(f"{path} is a symlink; a run directory must be a real, new or empty directory")
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
    path = check_path(target, "run directory")
    if not path.is_dir():
        raise RunDirError(f"{path}: not a directory; expected a run directory written by `dlrun train`")
    if not (path / CONFIG).is_file():
        raise RunDirError(f"{path}: not a run directory (no {CONFIG}); expected one written by `dlrun train`")
    return RunDir(path)


def missing_target(target: Path | str, what: str = "run directory or weights file",
                   root: Path | str = DEFAULT_RUNS_ROOT) -> str:
    """`PATH does not exist` and the closest run directories by name (in the folder PATH names, and in
    the runs root), for an error on a target that is not there."""
    import difflib

    path = Path(target)
    names: dict[str, Path] = {}
    for folder in dict.fromkeys([path.parent, Path(root)]):
        try:
            entries = sorted(folder.iterdir()) if folder.is_dir() else []
        except OSError:
            entries = []
        for entry in entries:
            if entry.is_dir() and (entry / CONFIG).is_file():
                names.setdefault(entry.name, entry)
    close = difflib.get_close_matches(path.name, list(names), n=3, cutoff=0.5)
    hint = f"; the closest run directories: {', '.join(str(names[n]) for n in close)}" if close else ""
    return f"{path}: no such {what} (the path does not exist){hint}"
