"""`dlrun cache info | clear`: the data cache's entries as a table, and what clearing did. The work is
in dlrun.data.cache_admin; this is only its presentation. No TensorFlow."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from dlrun.ui.console import format_bytes


def _settings(changed: dict[str, Any]) -> str:
    return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in changed.items() if k != "path")


def _count(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def info_table(info: dict[str, Any]) -> Table:
    """The entries, most recently used first: last used, size, source, the settings that differ from
    the defaults, and whether a running process uses it."""
    cap = f", cap {format_bytes(info['max_bytes'])}" if info["max_bytes"] is not None else ""
    table = Table(title=f"data cache: {info['location']} — {_count(len(info['entries']))}, "
                  f"{format_bytes(info['size_bytes'])}{cap}", header_style="bold")
    for column in ("last used", "size", "source", "settings", "in use", "key"):
        table.add_column(column, justify="right" if column == "size" else "left",
                         no_wrap=column in ("last used", "size", "key"))
    for entry in info["entries"]:
        table.add_row(entry["last_used"].replace("T", " ")[:16], format_bytes(entry["size_bytes"]), entry["source"],
                      _settings(entry["changed"]), "yes" if entry["in_use"] else "", entry["key"][:12])
    return table


def clear_line(result: dict[str, Any]) -> str:
    """`removed 3 entries and 1 temporary file left by a killed writer (120.4 MiB) from DIR; 1 in use kept;
    2 left`."""
    kept = f"; {result['in_use']} in use by a running process kept" if result["in_use"] else ""
    temps = result.get("temp_files_removed", 0)
    temps_text = (f" and {temps} temporary file{'s' if temps != 1 else ''} left by a killed writer" if temps else "")
    return (f"removed {_count(result['removed'])}{temps_text} ({format_bytes(result['freed_bytes'])}) from "
            f"{result['location']}{kept}; {result['left']} left")


def not_removed_line(result: dict[str, Any]) -> str | None:
    """`could not remove 3 file(s) of the cache (DIR/a.bin, ...): why` when clearing left some, else None."""
    refused = result.get("not_removed") or []
    if not refused:
        return None
    shown = ", ".join(r["path"] for r in refused[:3]) + (", ..." if len(refused) > 3 else "")
    return f"could not remove {len(refused)} file(s) of the data cache ({shown}): {refused[0]['reason']}"
