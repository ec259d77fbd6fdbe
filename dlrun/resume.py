"""`dlrun train --resume RUN_DIR`: continue an interrupted, crashed or failed run from its last
complete epoch, with the run's own saved config."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from dlrun import rundir
from dlrun.checkpoint import read_meta
from dlrun.config import LoadedConfig, config_sha256, load_config
from dlrun.console import Reporter
from dlrun.errors import DlrunError, Interrupted, RunDirError
from dlrun.interrupts import graceful_stop
from dlrun.rundir import RunDir
from dlrun.runs import check_resumable
from dlrun.train import load_data_for, train_guarded


def claim(run: rundir.RunDir) -> None:
    """Mark the run `running` under this process at once, so a second resume is refused."""
    summary = run.read_summary() if run.exists(rundir.SUMMARY) else {"run_dir": str(run.path)}
    summary.update(status="running", pid=os.getpid(), host=socket.gethostname())
    rundir.write_json(run / rundir.SUMMARY, summary)


def run_and_config(run_dir: str | Path, config: str | Path | LoadedConfig | None) -> tuple[RunDir, LoadedConfig]:
    """The run directory and its own saved config; a `config` given alongside must resolve to the
    same config (a resumed run cannot change it), else RunDirError."""
    run = rundir.find_run_dir(run_dir)
    lc = load_config(run / rundir.CONFIG)
    given = config if isinstance(config, LoadedConfig) else (load_config(config) if config is not None else None)
    if given is not None and config_sha256(given.config) != config_sha256(lc.config):
        raise RunDirError(f"{config} differs from the config of {run.path}; a resumed run keeps its own "
                          f"config ({run / rundir.CONFIG}). Drop the config argument, or start a new run.")
    return run, lc


def resume(run_dir: str | Path, config: str | Path | None = None, reporter: Reporter | None = None,
           use_cache: bool = True) -> dict[str, Any]:
    """Continue a run from its last complete epoch; returns the summary like `train`.

    `config`, when given, must resolve to the run's own config (a resumed run cannot change it).
    `use_cache=False` reads the data from its source, not the data cache.
    """
    reporter = reporter or Reporter(live=False)
    run, lc = run_and_config(run_dir, config)
    if run.exists(rundir.TRANSFER):
        raise RunDirError(f"{run.path} is a transfer run; resume it with: dlrun transfer --resume {run.path}")
    status = check_resumable(run)
    checkpoint = run.checkpoint / rundir.CHECKPOINT_STATE
    epoch = read_meta(checkpoint)["epoch"] if checkpoint.exists() else 0
    data = load_data_for(lc, use_cache)
    previous = run.read_summary() if run.exists(rundir.SUMMARY) else None
    with graceful_stop() as stop:
        claim(run)
        rundir.remove_temp_files(run.path)
        reporter.info(f"resuming {run.path} ({status}) after epoch {epoch}")
        try:
            return train_guarded(lc, run, data, reporter, checkpoint if checkpoint.exists() else None, stop)
        except Interrupted:
            raise
        except DlrunError:
            if previous is not None:  # e.g. a damaged checkpoint: the run stays as it was
                rundir.write_json(run / rundir.SUMMARY, previous)
            raise
