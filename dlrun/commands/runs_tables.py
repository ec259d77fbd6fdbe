"""The tables of `dlrun runs`: the list of runs and the comparison of two, for the console."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from dlrun.commands.runs import RunInfo, key_metrics
from dlrun.store.status import DAMAGED


def format_seconds(seconds: float | None) -> str:
    """`42s`, `3m 07s`, `1h 02m`."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


STATUS_STYLES = {"completed": "green", "running": "cyan", "interrupted": "yellow", "crashed": "red",
                 "diverged": "magenta", "pruned": "blue", "failed": "red", DAMAGED: "bold red"}


def runs_table(infos: list[RunInfo], root: Path | str) -> Table:
    """The `dlrun runs` table."""
    table = Table(title=f"runs in {root} (newest first)", header_style="bold")
    min_widths = {"name": 8, "epochs": 5, "key metrics": 12, "run dir": 16}
    for column in ("name", "status", "epochs", "key metrics", "started", "duration", "run dir"):
        table.add_column(column, no_wrap=column in ("status", "key metrics", "started", "duration"),
                         overflow="fold" if column == "run dir" else "ellipsis", min_width=min_widths.get(column))
    for info in infos:
        name = info.name if info.kind == "run" else f"{info.name} ({info.kind})"
        metrics = "\n".join(f"{k} {v:.4g}" for k, v in key_metrics(info.metrics).items())
        if info.problem:
            metrics = info.problem.removeprefix(info.path).lstrip("/")
        style = STATUS_STYLES.get(info.status, "")
        started = (info.started or "").replace("T", " ")[:16]
        table.add_row(name, f"[{style}]{info.status}[/]" if style else info.status, info.epochs, metrics,
                      started, format_seconds(info.seconds), info.path)
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def compare_tables(result: dict[str, Any]) -> list[Table]:
    """Config differences and metrics of `compare_runs`, as two tables."""
    a, b = result["a"]["path"], result["b"]["path"]
    config = Table(title="config differences", header_style="bold")
    for column in ("key", f"A: {a}", f"B: {b}"):
        config.add_column(column)
    for row in result["config"]:
        config.add_row(row["key"], _cell(row["a"]), _cell(row["b"]))
    if not result["config"]:
        config.add_row("(none: same config)", "", "")
    metrics = Table(title="metrics", header_style="bold")
    for column, justify in (("metric", "left"), ("A", "right"), ("B", "right"), ("B - A", "right")):
        metrics.add_column(column, justify=justify)  # type: ignore[arg-type]
    metrics.add_row("status", result["a"]["status"], result["b"]["status"], "")
    for row in result["metrics"]:
        delta = row["delta"]
        metrics.add_row(row["metric"], _cell(row["a"]), _cell(row["b"]), "-" if delta is None else f"{delta:+.4g}")
    return [config, metrics]
