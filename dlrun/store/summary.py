"""summary.json of a run: its clock (start time and training seconds across resumes) and the
common fields every run's summary starts with. No TensorFlow here."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dlrun.store.files import write_json
from dlrun.store.names import SUMMARY
from dlrun.store.rundir import RunDir


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

    @classmethod
    def started_at(cls, iso: Any) -> RunClock:
        """A clock whose start is a summary's `started` (ISO time), now when that is missing or unreadable."""
        try:
            return cls(started=datetime.fromisoformat(str(iso)).timestamp())
        except ValueError:
            return cls()

    def elapsed(self) -> float:
        """Seconds spent training, over every session of the run."""
        return self.offset + time.time() - self.session


def write_summary(run: RunDir, status: str, started: float, fields: dict[str, Any],
                  **extra: Any) -> dict[str, Any]:
    """Write summary.json: status, run_dir, `fields`, start time, this process, then `extra`."""
    summary: dict[str, Any] = {
        "status": status, "run_dir": str(run.path), **fields,
        "started": datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 3), "pid": os.getpid(), "host": socket.gethostname(),
    }
    summary.update(extra)
    write_json(run / SUMMARY, summary)
    return summary
