"""The tables of `dlrun runs` and `dlrun compare`, for the console."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from dlrun.commands.runs import key_metrics
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


# the columns of `dlrun runs`, in the order they are left out when the terminal is too narrow; the run
# directory, the path a user copies next, is never left out, wrapped or cut. Chosen --columns go last.
DROP_ORDER = ("started", "duration", "epochs", "name")


def _run_cells(info: dict[str, Any], columns: list[str]) -> dict[str, str]:
    name = info["name"] if info["kind"] == "run" else f"{info['name']} ({info['kind']})"
    style = STATUS_STYLES.get(info["status"], "")
    cells = {"name": name, "status": f"[{style}]{info['status']}[/]" if style else info["status"],
             "epochs": info["epochs"], "started": (info["started"] or "").replace("T", " ")[:16],
             "duration": format_seconds(info["seconds"]), "run dir": info["path"]}
    if columns:
        cells.update({f"={k}": _cell(info["values"].get(k)) for k in columns})
    else:
        cells["key metrics"] = "\n".join(f"{k} {v:.4g}" for k, v in key_metrics(info["metrics"]).items())
    if info.get("problem"):
        cells[f"={columns[0]}" if columns else "key metrics"] = info["problem"].removeprefix(info["path"]).lstrip("/")
    return cells


def runs_table(runs: list[dict[str, Any]], root: Path | str, columns: list[str] | None = None,
               width: int | None = None, title: str | None = None) -> Table:
    """The `dlrun runs` table (runs as `query_runs` gives them), fitted into `width` terminal columns
    by leaving out the least needed columns first; the run directory is never wrapped or cut."""
    cells = [_run_cells(info, columns or []) for info in runs]
    values = [f"={k}" for k in columns] if columns else ["key metrics"]
    fixed = [c for c in ("name", "status", "epochs") if c not in (columns or [])]
    shown = [*fixed, *values, *(c for c in ("started", "duration", "run dir") if c not in (columns or []))]
    for column in [c for c in (*DROP_ORDER, *reversed(values), "status") if c in shown]:
        if width is None or _needed(shown, cells) <= width:
            break
        shown.remove(column)
    table = Table(title=title or f"runs in {root}", header_style="bold")
    for column in shown:
        number = column.startswith("=") and any(isinstance(r["values"].get(column[1:]), int | float) for r in runs)
        table.add_column(column.removeprefix("="), no_wrap=True, justify="right" if number else "left",
                         overflow="fold" if column == "run dir" else "ellipsis")
    for row in cells:
        table.add_row(*(row[c] for c in shown))
    return table


def _needed(columns: list[str], cells: list[dict[str, str]]) -> int:
    """The width a table of these columns takes with nothing wrapped (rich's box: 3 per column + 1)."""
    widths = [max(_plain_len(c.removeprefix("=")), *(_plain_len(row[c]) for row in cells)) for c in columns]
    return sum(widths) + 3 * len(columns) + 1


def _plain_len(text: str) -> int:
    plain = Text.from_markup(text).plain if text.startswith("[") and text.endswith("[/]") else text
    return max((cell_len(line) for line in plain.splitlines()), default=0)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def compare_tables(result: dict[str, Any]) -> list[Table]:
    """The config keys that differ and the final metrics of `compare_runs`, a column per run."""
    runs = result["runs"]
    legend = Table(title="runs", header_style="bold")
    for column in ("", "run dir", "status"):
        legend.add_column(column, no_wrap=True)
    for i, run in enumerate(runs):
        legend.add_row(_letter(i), run["path"], run["status"])
    config = Table(title="config differences", header_style="bold")
    config.add_column("key")
    for i, run in enumerate(runs):
        config.add_column(f"{_letter(i)}: {run['label']}")
    for row in result["config"]:
        config.add_row(row["key"], *(_cell(v) for v in row["values"]))
    if not result["config"]:
        config.add_row("(none: same config)", *([""] * len(runs)))
    metrics = Table(title="final metrics", header_style="bold")
    metrics.add_column("metric")
    for i in range(len(runs)):
        metrics.add_column(_letter(i), justify="right")
    two = len(runs) == 2
    if two:
        metrics.add_column("B - A", justify="right")
    for row in result["metrics"]:
        delta = [] if not two else ["-" if row.get("delta") is None else f"{row['delta']:+.4g}"]
        metrics.add_row(row["metric"], *(_cell(v) for v in row["values"]), *delta)
    return [legend, config, metrics]


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"R{i + 1}"
