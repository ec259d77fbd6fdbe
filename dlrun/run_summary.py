"""summary.json of a run: its clock (start time and training seconds across resumes), the common
fields, and the `failed` mark. No TensorFlow here."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dlrun import rundir
from dlrun.config import LoadedConfig, config_sha256
from dlrun.console import Reporter, metrics_table
from dlrun.errors import RunDirError
from dlrun.rundir import RunDir


@dataclass
class RunClock:
    """When a run started (kept across resumes) and how long it has trained, in seconds."""

    started: float = field(default_factory=time.time)
    offset: float = 0.0
    session: float = field(default_factory=time.time)

    @classmethod
    def resumed(cls, meta: dict[str, Any]) -> RunClock:
        """The clock of a run continuing from checkpoint metadata."""
        offset = float(meta.get("seconds", 0.0))
        now = time.time()
        return cls(started=float(meta.get("started", now - offset)), offset=offset, session=now)

    def elapsed(self) -> float:
        """Seconds spent training, over every session of the run."""
        return self.offset + time.time() - self.session


def write_summary(run: RunDir, lc: LoadedConfig, status: str, started: float, rows: list[dict[str, Any]],
                  **extra: Any) -> dict[str, Any]:
    """Write summary.json (the common fields, then `extra`) and return it."""
    cfg = lc.config
    summary: dict[str, Any] = {
        "status": status, "run_dir": str(run.path), "name": cfg.name, "seed": cfg.seed,
        "epochs_run": len(rows), "epochs": cfg.train.epochs,
        "started": datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 3), "pid": os.getpid(), "host": socket.gethostname(),
        "config_sha256": config_sha256(cfg),
    }
    summary.update(extra)
    rundir.write_json(run / rundir.SUMMARY, summary)
    return summary


def mark_failed(run: RunDir, exc: BaseException) -> None:
    """Record a crash in summary.json (status failed) so the run can be resumed or inspected."""
    try:
        summary = run.read_summary()
    except RunDirError:
        summary = {"run_dir": str(run.path)}
    summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    rundir.write_json(run / rundir.SUMMARY, summary)


def report_summary(reporter: Reporter, summary: dict[str, Any]) -> None:
    """Print the closing table of a run."""
    shown = {"status": summary["status"], "epochs": summary["epochs_run"], **summary.get("metrics", {}),
             "seconds": summary["seconds"]}
    if "diverged_epoch" in summary:
        shown["diverged at epoch"] = summary["diverged_epoch"]
    reporter.table(metrics_table(f"{summary['name']} — {summary['run_dir']}", shown))
