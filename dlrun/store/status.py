"""Run statuses: the one list of them, which are final and which can be resumed, a `running` run
whose process is gone (`crashed`), a run whose records cannot be read (`damaged`), and the one way
to mark a run `failed` (also when the disk is full)."""

from __future__ import annotations

import contextlib
import socket
import zipfile
from pathlib import Path
from typing import Any

from dlrun.errors import RunDirError, StorageError
from dlrun.store.files import read_json, storage_problem, write_json
from dlrun.store.lock import lock_held
from dlrun.store.names import CHECKPOINT_DIR, CHECKPOINT_STATE, SUMMARY
from dlrun.store.rundir import RunDir

STATUSES = ("running", "completed", "interrupted", "diverged", "pruned", "failed")
# a sweep never runs such a trial again; `pruned`: a sweep's pruner stopped it at an epoch boundary (a result)
FINAL_STATUSES = ("completed", "diverged", "pruned", "failed")
RESUMABLE = ("interrupted", "crashed", "failed")
DAMAGED = "damaged"  # shown, never written: summary.json (or a resumable run's checkpoint) cannot be read


def effective_status(summary: dict[str, Any], path: Path) -> str:
    """The status of the run directory `path` whose summary.json holds `summary`, with a `running` run that
    no process holds the run lock on (store/lock.py) reported as `crashed`: its process is gone, whatever
    process has its pid now.

    A directory with no summary at all is `crashed` too (the process died while creating it).
    A run started on another host (whose lock this host may not see), or a summary without a pid (a
    sweep's), keeps `running`.
    """
    status = str(summary.get("status") or "crashed")
    if status != "running" or summary.get("pid") is None:
        return status  # without a pid (e.g. a sweep's summary) it is not a run's record
    host = summary.get("host")
    if host and host != socket.gethostname():
        return status
    return status if lock_held(path) else "crashed"


def check_resumable(run: RunDir) -> str:
    """The run's status when it can be resumed; RunDirError saying why not otherwise (a damaged
    summary.json: how to resume anyway). The caller holds the run lock (lock.exclusive_lock), so no
    other process on this host trains in the run: a `running` run of this host has crashed."""
    try:
        summary = run.read_summary() if run.exists(SUMMARY) else {}
    except RunDirError as exc:
        raise RunDirError(f"{exc}; this record of the run is damaged. Delete it to resume from the last "
                          "checkpoint (dlrun rebuilds it), or start a new run") from None
    status = str(summary.get("status") or "crashed")
    host = summary.get("host")
    if status == "running" and host and host != socket.gethostname():
        raise RunDirError(f"{run.path} is still running on host {host} (pid {summary.get('pid')}); stop it "
                          "(Ctrl-C) before resuming it, or wait for it to finish")
    if status == "running":
        status = "crashed"  # we hold its lock, so the process that wrote `running` is gone
    if status not in RESUMABLE:
        raise RunDirError(f"{run.path} is {status}; there is nothing to resume. Start a new run instead.")
    return status


def read_status(run: RunDir) -> tuple[str | None, dict[str, Any]]:
    """(status, summary) of a run directory; (None, {}) before it has a readable summary."""
    try:
        summary = run.read_summary()
    except RunDirError:
        return None, {}
    return summary.get("status"), summary


def mark_failed(run: RunDir, error: BaseException | str) -> dict[str, Any]:
    """Record in summary.json that the run failed (status `failed`, `error` saying why), keeping what
    the summary already held, so the run can be inspected or resumed. Returns the summary."""
    _, summary = read_status(run)
    summary = summary or {"run_dir": str(run.path)}
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    summary.update(status="failed", error=message)
    write_json(run / SUMMARY, summary)
    return summary


def damage(path: Path) -> str | None:
    """Why a run directory's records cannot be read (for `dlrun runs`: status `damaged`), or None.
    Cheap: summary.json is parsed, a resumable run's checkpoint only has its zip directory read."""
    summary_path = path / SUMMARY
    try:
        summary = read_json(summary_path) if summary_path.exists() else {}
    except RunDirError as exc:
        return str(exc)
    checkpoint = path / CHECKPOINT_DIR / CHECKPOINT_STATE
    if effective_status(summary, path) in RESUMABLE and checkpoint.exists():
        try:
            with zipfile.ZipFile(checkpoint) as archive:
                archive.getinfo("__meta__.npy")
        except (OSError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            return f"{checkpoint}: damaged checkpoint ({exc})"
    return None


def fail_for_storage(run: RunDir, exc: OSError, resume: str) -> StorageError:
    """A run stopped by a full or read-only disk: mark it `failed` with the reason (best effort: on a
    full disk even the summary may not fit; the run then shows as `crashed`, resumable all the same)
    and return the StorageError to raise, saying what to do."""
    problem = storage_problem(exc) or str(exc)
    where = exc.filename or run.path
    with contextlib.suppress(OSError):
        mark_failed(run, f"{problem} (writing {where})")
    return StorageError(f"{problem} while writing {where}; the run is marked failed and its files are whole, "
                        f"the last complete epoch included. Free some space, then resume: {resume}")
