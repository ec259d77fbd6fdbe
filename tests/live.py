"""Helpers for tests that signal or kill a real `dlrun` process while it trains."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import TINY_CNN, cli_env, deep_merge

# A CNN with dropout on 1000 synthetic digits: ~0.1 s per epoch on 2 cores, so a signal sent
# after epoch 2 lands well before the end, and the whole run takes a few seconds.
LIVE_CNN: dict[str, Any] = deep_merge(TINY_CNN, {
    "name": "live",
    "data": {"n_train": 1000, "n_test": 200},
    "train": {"epochs": 12, "batch_size": 32},
})


def start(*args: str | Path, cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start `python -m dlrun ARGS` without waiting for it."""
    return subprocess.Popen([sys.executable, "-m", "dlrun", *map(str, args)], cwd=cwd, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    """The rows of metrics.csv ([] while there is none). The file is replaced atomically, so a
    read sees a complete version."""
    try:
        text = (run_dir / "metrics.csv").read_text()
    except FileNotFoundError:
        return []
    return list(csv.DictReader(io.StringIO(text)))


def wait_for_epochs(proc: subprocess.Popen[str], run_dir: Path, epochs: int, timeout: float = 120) -> int:
    """Poll until metrics.csv has at least `epochs` rows; returns the count (fails if the process ends first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = len(metric_rows(run_dir))
        if done >= epochs:
            return done
        if proc.poll() is not None:
            raise AssertionError(f"dlrun exited ({proc.returncode}) before epoch {epochs}: {proc.stderr.read()}")
        time.sleep(0.005)
    raise AssertionError(f"no epoch {epochs} within {timeout} s")


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    """Wait for the process; (returncode, stdout, stderr)."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def without_seconds(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """metrics.csv rows minus the wall-clock column, which no two runs share."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
