"""pareto.png: a multi-objective sweep's trials in the plane of two objectives, the Pareto front joined
by its staircase; pruned and diverged trials marked. Matplotlib Agg, written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dlrun.ui.plots import _pyplot, _save

# (x value or None, y value or None, kind, front rank or None): kind is completed, pruned, diverged, failed
ParetoPoint = tuple[float | None, float | None, str, int | None]
MARKS = {"pruned": ("x", "#2166ac", "pruned (value when pruned)"),
         "diverged": ("v", "#b2182b", "diverged (at the axis: no value)"),
         "failed": ("s", "#6a3d9a", "failed (at the axis: no value)")}


def pareto_plot(path: Path, points: Sequence[ParetoPoint], x: tuple[str, str], y: tuple[str, str],
                title: str) -> int:
    """Draw every trial as a point of (x, y), each (metric, goal): the front (rank 1) filled and joined by
    the staircase of what it attains, other completed trials grey, pruned, diverged and failed trials in
    their own marks (a missing value drawn at the axis' lower edge). Returns how many points were drawn."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    known = [p for p in points if p[0] is not None and p[1] is not None]
    ys = [p[1] for p in known] or [0.0]
    xs = [p[0] for p in known] or [0.0]
    low_y, low_x = min(ys), min(xs)  # type: ignore[type-var]
    drawn = 0
    rest = [p for p in known if p[2] == "completed" and p[3] != 1]
    if rest:
        ax.scatter([p[0] for p in rest], [p[1] for p in rest], c="#999999", s=22, label="dominated")
        drawn += len(rest)
    for kind, (marker, colour, label) in MARKS.items():
        group = [(low_x if p[0] is None else p[0], low_y if p[1] is None else p[1]) for p in points
                 if p[2] == kind]
        if group:
            ax.scatter([g[0] for g in group], [g[1] for g in group], marker=marker, c=colour, s=30, label=label)
            drawn += len(group)
    front = sorted((p for p in known if p[3] == 1), key=lambda p: p[0])  # type: ignore[arg-type,return-value]
    if front:
        # the staircase of the attained region: each front point holds its y towards the worse x
        ax.step([p[0] for p in front], [p[1] for p in front], where="post" if x[1] == "min" else "pre",
                c="#1a9850", lw=1.5)
        ax.scatter([p[0] for p in front], [p[1] for p in front], c="#1a9850", s=40, zorder=3,
                   label="Pareto front")
        drawn += len(front)
    ax.set_xlabel(f"{x[0]} ({x[1]} is better)")
    ax.set_ylabel(f"{y[0]} ({y[1]} is better)")
    if x[0] == "params":
        ax.set_xscale("log")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return drawn

