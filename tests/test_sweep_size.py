"""Sweep outputs that grow with the problem stay bounded (issue 30): the cap on trials, the heat map of a
large grid (one image, no text per cell), the leaderboard's top rows."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from conftest import TINY_MLP, write_config
from matplotlib import image
from rich.console import Console

import dlrun
from dlrun.store import names
from dlrun.sweeps.executors import TrialTask
from dlrun.sweeps.leaderboard import LEADERBOARD_ROWS, leaderboard
from dlrun.sweeps.plan import plan_sweep
from dlrun.sweeps.report import outcomes_for
from dlrun.sweeps.session import SweepSession
from dlrun.ui import heatmap


def test_a_heat_map_of_10000_trials_is_one_bounded_image_drawn_in_seconds(tmp_path: Path) -> None:
    """A 100 x 100 grid drawn as labelled cells was a 117 x 64 inch figure (11,700 x 6,400 pixels)."""
    n = 100
    cells = [[((i * j) % 7 / 7, "", "diverged" if i == j else "completed") for j in range(n)] for i in range(n)]
    started = time.monotonic()
    heatmap.sweep_heatmap(tmp_path / "h.png", "optimizer.lr", [1e-4 * (i + 1) for i in range(n)], "model.l2",
                          [1e-6 * (j + 1) for j in range(n)], cells, "val_accuracy", "big")
    seconds = time.monotonic() - started
    height, width = image.imread(tmp_path / "h.png").shape[:2]
    assert (width <= 1400, height <= 1000, seconds < 30) == (True, True, True), (width, height, seconds)


def test_the_leaderboard_prints_the_top_rows_and_says_where_the_rest_are(tmp_path: Path) -> None:
    lrs = ",".join(f"{0.001 * (k + 1):g}" for k in range(LEADERBOARD_ROWS + 10))
    plan = plan_sweep(write_config(tmp_path, TINY_MLP), lr=lrs)
    table = leaderboard(plan, list(outcomes_for(plan, tmp_path / names.SWEEP_TRIALS).values()), "t")
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(table)
    assert (table.row_count, f"the top {LEADERBOARD_ROWS} of {LEADERBOARD_ROWS + 10} trials" in console.export_text(),
            ) == (LEADERBOARD_ROWS, True)


def test_a_grid_trial_gets_its_directory_when_it_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 20,000-point plan made 20,000 directories before its first trial: now each is made as it starts."""
    seen: list[list[str]] = []
    started = SweepSession.started

    def record(self: SweepSession, task: TrialTask) -> None:
        seen.append(sorted(p.name for p in (self.root / names.SWEEP_TRIALS).iterdir()))
        started(self, task)

    monkeypatch.setattr(SweepSession, "started", record)
    config = write_config(tmp_path, TINY_MLP, train={"epochs": 1})
    summary = dlrun.sweep(config, lr="0.05,0.1,0.2", sweep_dir=tmp_path / "sw")
    assert (seen, summary["status"]) == ([["000"], ["000", "001"], ["000", "001", "002"]], "completed")
