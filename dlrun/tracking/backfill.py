"""`dlrun track mlflow RUNS`: send existing run and sweep directories to MLflow (what live tracking
missed, or runs trained without it), through the same sync as live tracking."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlrun.errors import RunDirError
from dlrun.store import names
from dlrun.tracking import records
from dlrun.tracking.mlflow_store import Mirror, require_mlflow, target


def _directories(root: Path) -> list[Path]:
    """`root` itself when it is a run or sweep directory, else the run and sweep directories in it."""
    if (root / names.SUMMARY).is_file() or records.is_sweep(root):
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and ((p / names.SUMMARY).is_file() or records.is_sweep(p)))


def backfill(root: Path | str, uri: str | None = None, experiment: str | None = None,
             warn: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Mirror every run and sweep under `root` to MLflow; directories already sent whole are skipped.

    Args:
        root: A folder of runs, or one run or sweep directory.
        uri: The tracking URI (default: sqlite:///ROOT/mlflow.db).
        experiment: The experiment (default: each run's config name).
        warn: Hears about a store that cannot be reached (once).

    Returns:
        {uri, sent, already, failed, runs: [{path, run_id}]}.

    Raises:
        RunDirError: `root` is not a directory.
        DlrunError: mlflow is not installed.
    """
    root = Path(root)
    if not root.is_dir():
        raise RunDirError(f"{root}: no such directory; give the folder that holds your runs (default: runs)")
    require_mlflow()
    single = records.is_sweep(root) or (root / names.SUMMARY).is_file()
    where = target(uri, experiment, root.parent if single else root)
    mirror = Mirror(where, warn)
    sent, already, done = 0, 0, []
    for path in _directories(root):
        if records.read_state(path, where.uri).get("finished"):
            already += 1
            continue
        run_id = mirror.sync_sweep(path) if records.is_sweep(path) else mirror.sync_run(path, final=True)
        sent += run_id is not None
        done.append({"path": str(path), "run_id": run_id})
    return {"uri": where.uri, "sent": sent, "already": already, "failed": sum(d["run_id"] is None for d in done),
            "runs": done}
