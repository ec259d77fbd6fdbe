"""Sweep outputs that grow with the problem stay bounded (issue 30): the cap on trials, the heat map of a
large grid (one image, no text per cell), the leaderboard's top rows."""

from __future__ import annotations

import io
import time
from pathlib import Path

from conftest import TINY_MLP, write_config
from matplotlib import image
from rich.console import Console

from dlrun.store import names
from dlrun.sweeps.plan import plan_sweep
from dlrun.sweeps.report import LEADERBOARD_ROWS, leaderboard, outcomes_for
from dlrun.ui import plots


def test_a_heat_map_of_10000_trials_is_one_bounded_image_drawn_in_seconds(tmp_path: Path) -> None:
    """A 100 x 100 grid drawn as labelled cells was a 117 x 64 inch figure (11,700 x 6,400 pixels)."""
    n = 100
    cells = [[((i * j) % 7 / 7, "", "diverged" if i == j else "completed") for j in range(n)] for i in range(n)]
    started = time.monotonic()
    plots.sweep_heatmap(tmp_path / "h.png", "optimizer.lr", [1e-4 * (i + 1) for i in range(n)], "model.l2",
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
