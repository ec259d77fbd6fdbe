"""History plots drawn off a sweep's critical path (ui/plots.py): by a helper process on one kept figure,
pixel for pixel the plot `dlrun train` draws, and never lost when that process dies; matplotlib imported ahead."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import image

from dlrun.ui import plots


def _rows(epochs: int, metric: str = "accuracy", start: float = 2.3) -> list[dict[str, Any]]:
    return [{"epoch": i + 1, "loss": start - 0.1 * i, metric: 0.1 + 0.05 * i, "val_loss": start - 0.09 * i,
             f"val_{metric}": 0.1 + 0.04 * i} for i in range(epochs)]


# different lengths, scales, metrics and stage marks: each must leave nothing on the kept figure for the next
PLOTS = [(_rows(10), "a", None), (_rows(3, start=9.0), "b", [(1, "stage 2")]), (_rows(1, "mae"), "c", None),
         (_rows(20), "d", [(5, "x"), (10, "y")]), (_rows(2), "e", None)]


def test_plots_drawn_in_the_background_are_the_plots_drawn_inline(tmp_path: Path) -> None:
    with plots.drawn_in_background():
        for i, (rows, title, marks) in enumerate(PLOTS):
            plots.history_plot(rows, tmp_path / f"kept{i}.png", title, marks)
    for i, (rows, title, marks) in enumerate(PLOTS):
        plots.history_plot(rows, tmp_path / f"fresh{i}.png", title, marks)
        assert np.array_equal(image.imread(tmp_path / f"kept{i}.png"), image.imread(tmp_path / f"fresh{i}.png"))


def test_kept_plots_are_not_drawn_but_kept_to_be_drawn_elsewhere(tmp_path: Path) -> None:
    rows, title, marks = PLOTS[1]
    with plots.kept_plots() as kept:  # a Ray trial's: the sweep process draws it
        plots.history_plot(rows, tmp_path / "there.png", title, marks)
    assert not (tmp_path / "there.png").exists() and plots._later is None
    [(kept_rows, _, *rest)] = kept
    plots.history_plot(kept_rows, tmp_path / "here.png", *rest)
    plots.history_plot(rows, tmp_path / "inline.png", title, marks)
    assert np.array_equal(image.imread(tmp_path / "here.png"), image.imread(tmp_path / "inline.png"))


def test_plots_survive_a_killed_plotter(tmp_path: Path) -> None:
    with plots.drawn_in_background():
        assert plots._later is not None
        plots.history_plot(_rows(3), tmp_path / "before.png", "before")
        process = plots._later.process
        process.send_signal(signal.SIGKILL)
        process.wait()
        plots.history_plot(_rows(3), tmp_path / "after.png", "after")  # drawn here: the plotter is gone
    assert (tmp_path / "before.png").is_file() and (tmp_path / "after.png").is_file()


def test_import_soon_loads_matplotlib_with_agg_in_a_background_thread() -> None:
    """A sweep whose trials start in other processes imports matplotlib meanwhile, for its final plots."""
    code = ("import sys, threading; from dlrun.ui import plots; assert 'matplotlib' not in sys.modules; "
            "plots.import_soon(); [t.join() for t in threading.enumerate() if t.name == 'dlrun-import-matplotlib']; "
            "import matplotlib; print('matplotlib.pyplot' in sys.modules, matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "Agg"]
