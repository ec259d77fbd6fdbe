"""Continuing a run: its own saved config (a resumed run cannot change it) and claiming it for
this process. Shared by `dlrun train --resume` and `dlrun transfer --resume`. No TensorFlow here."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from dlrun.config import LoadedConfig, config_sha256, load_config
from dlrun.errors import RunDirError
from dlrun.store import files, names
from dlrun.store.rundir import RunDir, find_run_dir


def claim(run: RunDir) -> None:
    """Mark the run `running` under this process at once, so a second resume is refused."""
    summary = run.read_summary() if run.exists(names.SUMMARY) else {"run_dir": str(run.path)}
    summary.update(status="running", pid=os.getpid(), host=socket.gethostname())
    files.write_json(run / names.SUMMARY, summary)


def check_run_writable(run: RunDir) -> None:
    """Before any data is read: the run directory (and its checkpoint folder) must be writable."""
    for folder in (run.path, run.checkpoint):
        if folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
            raise RunDirError(f"{folder} is not writable (a read-only file system?); dlrun cannot resume the run "
                              "there. Make it writable, or copy the run directory somewhere writable")


def run_and_config(run_dir: str | Path, config: str | Path | LoadedConfig | None) -> tuple[RunDir, LoadedConfig]:
    """The run directory and its own saved config; a `config` given alongside must resolve to the
    same config (a resumed run cannot change it), else RunDirError."""
    run = find_run_dir(run_dir)
    lc = load_config(run / names.CONFIG)
    given = config if isinstance(config, LoadedConfig) else (load_config(config) if config is not None else None)
    if given is not None and config_sha256(given.config) != config_sha256(lc.config):
        raise RunDirError(f"{config} differs from the config of {run.path}; a resumed run keeps its own "
                          f"config ({run / names.CONFIG}). Drop the config argument, or start a new run.")
    return run, lc
