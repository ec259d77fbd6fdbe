"""`dlrun train --resume RUN_DIR`: continue an interrupted, crashed or failed run from its last
complete epoch, with the run's own saved config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlrun.commands.train import train_guarded
from dlrun.data import load_checked
from dlrun.engine.checkpoint import check_same_data, read_meta
from dlrun.engine.resume import check_run_writable, claim, run_and_config
from dlrun.errors import DlrunError, Interrupted, RunDirError, StorageError
from dlrun.interrupts import graceful_stop
from dlrun.store import files, names
from dlrun.store.lock import exclusive_lock
from dlrun.store.status import check_resumable
from dlrun.tracking.live import resolve as resolve_tracking
from dlrun.tracking.live import tracked_run
from dlrun.ui.console import Reporter


def resume(run_dir: str | Path, config: str | Path | None = None, reporter: Reporter | None = None,
           use_cache: bool = True, track: str | None = None) -> dict[str, Any]:
    """Continue a run from its last complete epoch (and the MLflow run it was mirrored to).

    Args:
        run_dir: The run directory (interrupted, crashed or failed).
        config: Optional; must resolve to the run's own config (a resumed run cannot change it).
        reporter: Where progress and tables go (default: lines and tables on stdout, no progress
            bars; `dlrun.ui.console.Reporter(json_mode=True)` prints nothing).
        use_cache: Serve the data from the data cache (False: read it from its source).
        track: `mlflow` or `mlflow=URI`, as for train (default: the store the run was mirrored to, if any).

    Returns:
        The run's summary, as `train` returns it.

    Raises:
        RunDirError: not a run, still running (or being resumed by another process), already ended, a
            transfer run, a damaged checkpoint, or another config.
        StorageError: the disk filled up (or turned read-only); resume again once there is space.
        Interrupted: after saving, when Ctrl-C / SIGTERM stopped training again.
    """
    reporter = reporter or Reporter(live=False)
    run, lc = run_and_config(run_dir, config)
    if run.exists(names.TRANSFER):
        raise RunDirError(f"{run.path} is a transfer run; resume it with: dlrun transfer --resume {run.path}")
    tracker = resolve_tracking(lc.config.tracking, track, run.path.parent, resumed=run.path)
    with exclusive_lock(run.path, "being trained"):  # of two resumes of one run, exactly one goes on
        status = check_resumable(run)
        check_run_writable(run)
        checkpoint = run.checkpoint / names.CHECKPOINT_STATE
        meta = read_meta(checkpoint) if checkpoint.exists() else {}
        with reporter.progress() as progress:
            data = load_checked(lc, use_cache, progress)
        check_same_data(meta, data, checkpoint)  # before the run is claimed: a refused resume changes nothing
        previous = run.read_summary() if run.exists(names.SUMMARY) else None
        with graceful_stop() as stop:
            claim(run)
            files.remove_temp_files(run.path)
            reporter.info(f"resuming {run.path} ({status}) after epoch {meta.get('epoch', 0)}")
            try:
                with tracked_run(tracker, run.path, reporter.warn):
                    return train_guarded(lc, run, data, reporter, checkpoint if checkpoint.exists() else None, stop)
            except (Interrupted, StorageError):
                raise
            except DlrunError:
                if previous is not None:  # e.g. a damaged checkpoint: the run stays as it was
                    files.write_json(run / names.SUMMARY, previous)
                raise
