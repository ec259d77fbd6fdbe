"""The transfer mapping table: target layer, shapes, source layer, what happened to its weights and
the stages it trains in, for the console and for error messages."""

from __future__ import annotations

import io

from rich import box
from rich.console import Console
from rich.table import Table

from dlrun.weights.mapping import LOADED, MISMATCH, NEW, REINIT, MapRow, Shapes

STATUS_STYLE = {LOADED: "green", REINIT: "yellow", NEW: "cyan", MISMATCH: "bold red"}


def compact_shapes(shapes: Shapes | None) -> str:
    """`3x3x1x16 + 16` (kernel, bias, ...)."""
    return " + ".join("x".join(map(str, s)) or "scalar" for s in shapes or []) or "-"


def trains_in(row: MapRow, stages: list[str]) -> str:
    """`every stage`, `frozen`, or the stages in which the layer trains."""
    names = [name for name in stages if row.trainable.get(name)]
    if not names:
        return "[dim]frozen[/]"
    return "[bold]every stage[/]" if len(names) == len(stages) else "[bold]" + ", ".join(names) + "[/]"


def mapping_table(rows: list[MapRow], stages: list[str], title: str = "transfer mapping") -> Table:
    """target | shapes | source | source shapes | weights | the stages in which the layer trains."""
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("target", "shapes", "source", "source shapes", "weights", *(["trains in"] if stages else [])):
        table.add_column(column, no_wrap=column in ("target", "source"))
    for row in rows:
        same = row.source_shapes == row.target_shapes
        source_shapes = "" if row.source_shapes is None else "same" if same else compact_shapes(row.source_shapes)
        status = f"{row.status} ({row.note})" if row.note else row.status
        cells = [row.target, compact_shapes(row.target_shapes), row.source or "-", source_shapes,
                 f"[{STATUS_STYLE.get(row.status, '')}]{status}[/]"]
        table.add_row(*cells, *([trains_in(row, stages)] if stages else []))
    return table


def table_text(table: Table, width: int = 160) -> str:
    """A rich table as plain text (for error messages)."""
    console = Console(file=io.StringIO(), width=width, color_system=None, highlight=False)
    console.print(table)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())
