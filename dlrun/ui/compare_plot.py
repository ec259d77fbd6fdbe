"""compare.png: the learning curves of several runs overlaid, a colour per run (training dashed,
validation solid), loss on the left, accuracy (or mae) on the right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlrun.ui.plots import _num, _pyplot, _save


def compare_plot(curves: list[tuple[str, list[dict[str, Any]]]], path: Path, title: str) -> None:
    """Draw every run's metrics.csv rows on one pair of axes and save the PNG atomically.

    Args:
        curves: (label, metrics.csv rows) per run, in the order of the legend.
        path: Where the PNG goes.
        title: The figure's title.
    """
    rows = [r for _, run_rows in curves for r in run_rows]
    metric = "accuracy" if any(_num(r.get("accuracy")) is not None for r in rows) else "mae"
    fig, axes = _pyplot().subplots(1, 2, figsize=(11, 4.4))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.22, top=0.9, wspace=0.22)
    colours = _pyplot().get_cmap("tab10" if len(curves) <= 10 else "tab20")
    for ax, key in zip(axes, ("loss", metric), strict=True):
        for i, (label, run_rows) in enumerate(curves):
            x = [int(_num(r.get("epoch")) or n + 1) for n, r in enumerate(run_rows)]
            for prefix, style in (("", "--"), ("val_", "-")):
                ys = [_num(r.get(prefix + key)) for r in run_rows]
                if any(v is not None for v in ys):
                    ax.plot(x, [float("nan") if v is None else v for v in ys], style, color=colours(i % colours.N),
                            lw=1.4, marker="o" if len(x) < 30 else None, ms=2.5,
                            label=label if prefix == "val_" or not any(r.get("val_" + key) for r in run_rows)
                            else None)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, max(1, len(labels))), fontsize=7, frameon=False)
    fig.suptitle(f"{title}  (training dashed, validation solid)", fontsize=10)
    _save(fig, path)
