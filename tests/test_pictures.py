"""What a user sees in the pictures, read back pixel by pixel: a pruned cell of the sweep heat map keeps
the colour of its last value, hatched, with its epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from conftest import TINY_MLP, write_config

from dlrun.sweeps.plan import plan_sweep
from dlrun.sweeps.report import Outcome, heat_cells
from dlrun.ui.plots import heatmap_figure

matplotlib.use("Agg")


def pixels(fig: Any) -> np.ndarray:
    """The figure as drawn: H x W x 3 floats in 0-1, row 0 at the top."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba(), dtype=float)[..., :3] / 255


def cell_band(fig: Any, ax: Any, image: np.ndarray, i: int, j: int) -> np.ndarray:
    """The pixels of the top band of cell (i, j) (above its label), as N x 3."""
    height = image.shape[0]
    (x0, y0), (x1, y1) = ax.transData.transform([(j - 0.42, i - 0.42), (j + 0.42, i - 0.22)])
    top, bottom = sorted((height - y0, height - y1))
    return image[int(top):int(bottom), int(min(x0, x1)):int(max(x0, x1))].reshape(-1, 3)


def test_a_pruned_cell_keeps_its_colour_with_a_hatch_and_its_epoch() -> None:
    import matplotlib.pyplot as plt

    cells = [[(0.10, "0.100", "completed"), (0.85, "0.850\npruned @3", "pruned"), (0.90, "0.900", "completed")]]
    fig, ax = heatmap_figure("optimizer.lr", [0.01], "model.l2", [0.0, 0.01, 0.1], cells, "val_accuracy", "t")
    image = pixels(fig)
    pruned, done = cell_band(fig, ax, image, 0, 1), cell_band(fig, ax, image, 0, 2)
    expected = np.array(plt.get_cmap("viridis")((0.85 - 0.10) / 0.80)[:3])
    base = np.median(pruned, axis=0)
    assert np.abs(base - expected).max() < 0.08, (base, expected)  # its value's colour ...
    assert base.max() - base.min() > 0.3  # ... not grey
    away = np.abs(pruned - base).max(axis=1) > 0.2
    assert 0.03 < away.mean() < 0.7, away.mean()  # hatch lines cross it
    assert (np.abs(done - np.median(done, axis=0)).max(axis=1) > 0.2).mean() < 0.01  # a plain cell has none
    assert any("pruned @3" in t.get_text() for t in ax.texts)
    plt.close(fig)


def test_the_heat_grid_gives_a_pruned_trial_its_last_value(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, sweep={"params": {"optimizer.lr": [0.1, 0.01], "model.l2": [0.0]}})
    plan = plan_sweep(config)
    summaries = [("pruned", {"metrics": {"val_accuracy": 0.85}, "pruned_epoch": 3}),
                 ("completed", {"metrics": {"val_accuracy": 0.9}})]
    outcomes = {t.id: Outcome(t, tmp_path / t.id, status, summary)
                for t, (status, summary) in zip(plan.trials, summaries, strict=True)}
    _, _, _, _, cells = heat_cells(plan, outcomes)
    assert cells[0][0] == (0.85, "0.850\npruned @3", "pruned")
