"""A sweep's heat map: a grid of trials coloured by the ranking metric, marked where trials diverged,
failed, were pruned or have not ended (matplotlib, Agg backend, written atomically). No TensorFlow here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlrun.ui.plots import _pyplot, _save

HEAT_MARKS = {"diverged": ("#b2182b", "//"), "failed": ("#6a3d9a", "\\\\"), "pending": ("#f0f0f0", ""),
              "running": ("#f0f0f0", ""), "interrupted": ("#f0f0f0", "..")}
PRUNED_HATCH = "xx"  # drawn over the colour of the pruned trial's last value

LABELLED_CELLS = 400
"""Past this many cells (or 40 rows or columns) the heat map is drawn as one image: no value written in each
cell, marks as flat colours, its size and its axis labels bounded (a 100 x 100 grid as labelled cells took
a 117 x 64 inch figure and minutes)."""


def sweep_heatmap(path: Path, row_key: str, rows: list[Any], col_key: str, cols: list[Any],
                  cells: list[list[tuple[float | None, str, str]]], metric: str, title: str,
                  goal: str = "max") -> None:
    """A grid of trials coloured by `metric` (the better, the brighter); cells whose kind is diverged,
    failed or unfinished are drawn hatched in their own colour instead, so an exploding learning
    rate stands out. A pruned cell keeps the colour of its last value, hatched, with its epoch. Past
    LABELLED_CELLS, an image without per-cell text."""
    fig, _ = heatmap_figure(row_key, rows, col_key, cols, cells, metric, title, goal)
    _save(fig, path)


def heatmap_figure(row_key: str, rows: list[Any], col_key: str, cols: list[Any],
                   cells: list[list[tuple[float | None, str, str]]], metric: str, title: str,
                   goal: str = "max") -> tuple[Any, Any]:
    """(figure, axes) of sweep_heatmap, drawn but not saved (cell (i, j) is at data point (j, i))."""
    import numpy as np

    plt = _pyplot()
    values = np.array([[np.nan if v is None else v for v, _, _ in row] for row in cells], dtype=float)
    low, high = (np.nanmin(values), np.nanmax(values)) if np.isfinite(values).any() else (0.0, 1.0)
    large = len(rows) * len(cols) > LABELLED_CELLS or max(len(rows), len(cols)) > 40
    size = (max(6.0, 2.2 + 1.15 * len(cols)), 1.9 + 0.62 * len(rows))
    fig, ax = plt.subplots(figsize=(min(size[0], 14.0), min(size[1], 10.0)) if large else size)
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis" if goal == "max" else "viridis_r",
                      aspect="auto", vmin=low, vmax=high, interpolation="nearest")
    fig.colorbar(image, ax=ax, label=metric)
    if large:
        _flat_marks(ax, cells)
        title += f"\n{len(rows)} x {len(cols)} trials: values in results.csv"
    else:
        _labelled_cells(ax, cells, low, high, goal)
    rstep, cstep = max(1, -(-len(rows) // 30)), max(1, -(-len(cols) // 12))  # at most 30 and 12 labels
    ax.set_xticks(range(0, len(cols), cstep), [_tick(c) for c in cols[::cstep]], rotation=30 if large else 0)
    ax.set_yticks(range(0, len(rows), rstep), [_tick(r) for r in rows[::rstep]])
    ax.set_xlabel(col_key or "")
    ax.set_ylabel(row_key)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig, ax


def _labelled_cells(ax: Any, cells: list[list[tuple[float | None, str, str]]], low: float, high: float,
                    goal: str) -> None:
    """Each cell's label written in it; marked cells hatched in their own colour, pruned ones hatched over the
    colour of their value."""
    from matplotlib.patches import Rectangle

    for i, row in enumerate(cells):
        for j, (value, label, kind) in enumerate(row):
            pruned = kind == "pruned"
            color, hatch = HEAT_MARKS.get(kind, ("none", PRUNED_HATCH if pruned else ""))
            if kind in HEAT_MARKS or (pruned and value is not None):
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=color, hatch=hatch,
                                       edgecolor="#ffffffaa" if pruned else "#ffffff66", lw=0.5))
            marked = kind in ("diverged", "failed") or (pruned and value is None)
            brightness = None if value is None or high == low else (value - low) / (high - low)
            if brightness is not None and goal != "max":
                brightness = 1 - brightness
            dark = marked or (brightness is not None and brightness < 0.5)
            box = ({"boxstyle": "round,pad=0.15", "facecolor": color if marked else "#00000099", "edgecolor": "none"}
                   if marked or pruned else None)
            ax.text(j, i, label, ha="center", va="center", fontsize=7, color="white" if dark or pruned else "black",
                    fontweight="bold" if marked or pruned else "normal", bbox=box)


def _flat_marks(ax: Any, cells: list[list[tuple[float | None, str, str]]]) -> None:
    """Marked cells (diverged, failed, unfinished) as one image layer of flat colours (pruned cells keep
    the colour of their value)."""
    import numpy as np
    from matplotlib.colors import to_rgba

    layer = np.zeros((len(cells), len(cells[0]) if cells else 0, 4))
    for i, row in enumerate(cells):
        for j, (_, _, kind) in enumerate(row):
            if kind in HEAT_MARKS:
                layer[i, j] = to_rgba(HEAT_MARKS[kind][0])
    ax.imshow(layer, aspect="auto", interpolation="nearest")


def _tick(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
