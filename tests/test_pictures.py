"""What a user sees in the pictures, read back pixel by pixel: a pruned cell of the sweep heat map keeps
the colour of its last value, hatched, with its epoch; a confusion matrix's errors coloured by their
share of the row; whole epoch ticks; the predict grid's titles name the files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from conftest import ROOT, TINY_MLP, write_config

from dlrun.commands.predict import grid_titles
from dlrun.sweeps.plan import plan_sweep
from dlrun.sweeps.report import Outcome, heat_cells
from dlrun.ui.heatmap import heatmap_figure
from dlrun.ui.plots import _draw_history, _history_figure, confusion_figure

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
    rows = [[{"epoch": str(e), "val_accuracy": str(v)} for e, v in enumerate(values, 1)]
            for values in ([0.5, 0.7, 0.85], [0.6, 0.9])]  # a trial is scored from its epoch rows
    outcomes = {t.id: Outcome(t, tmp_path / t.id, status, summary, scoring=plan.scoring, rows=r)
                for t, (status, summary), r in zip(plan.trials, summaries, rows, strict=True)}
    _, _, _, _, cells = heat_cells(plan, outcomes)
    assert cells[0][0] == (0.85, "0.850\npruned @3", "pruned")


def test_confusion_errors_are_coloured_by_their_share_of_the_row_with_counts_kept() -> None:
    import matplotlib.pyplot as plt

    fig, ax = confusion_figure([[1000, 0], [30, 10]], ["0", "1"], "t")
    image = pixels(fig)
    height = image.shape[0]
    x, y = ax.transData.transform((0, 1))  # true 1, predicted 0: 30 of 40, three quarters of its row
    error = image[int(height - y) - 12, int(x) - 12]
    assert error.min() < 0.5, error  # a dark blue, where colouring by count made it nearly white (30/1000)
    assert sorted(t.get_text() for t in ax.texts) == ["0", "10", "1000", "30"]
    plt.close(fig)


def test_epoch_axes_have_whole_ticks_only() -> None:
    import matplotlib.pyplot as plt

    fig, axes = _history_figure()
    _draw_history(fig, axes, [{"loss": 1.0 / e, "accuracy": 0.5 + e / 10} for e in (1, 2, 3)], "t", None)
    fig.canvas.draw()
    for ax in axes:
        shown = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert shown and all(float(t).is_integer() for t in shown), shown
    plt.close(fig)


def test_predict_grid_titles_name_the_file() -> None:
    rows = [{"source": "new/cat_001.png", "class": "cat", "probability": 0.91},
            {"source": "x" * 40 + ".jpg", "class": "dog", "probability": 0.5}]
    titles = grid_titles(rows)
    assert titles[0] == "cat_001.png\ncat (0.91)"
    name = titles[1].split("\n")[0]
    assert name.startswith("…") and name.endswith("xxx.jpg") and len(name) == 24


def test_model_txt_keeps_every_column_of_the_summary() -> None:
    from dlrun.config import load_config
    from dlrun.engine.model import build_model, summary_text

    text = summary_text(build_model(load_config(ROOT / "configs" / "quickstart.yaml"), (28, 28, 1)))
    assert "Param #" in text and "51,264" in text  # the last column, and the dense layer's count in it
    table = [line.rstrip() for line in text.splitlines() if line.startswith(("┏", "┃", "┡", "│", "├", "└"))]
    assert table and all(line.endswith(("┓", "┃", "┩", "┤", "┘", "│")) for line in table)  # no row cut short
