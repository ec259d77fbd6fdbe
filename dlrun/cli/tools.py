"""The CLI of the tools around training: `dlrun schema`, `dlrun env` and `dlrun cache info | clear`. No
TensorFlow here (`dlrun env` loads it only to list the devices, after everything else is printed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dlrun.cli.options import JsonOpt
from dlrun.store.names import DEFAULT_RUNS_ROOT
from dlrun.ui.console import Reporter


def schema(out: Annotated[Path | None, typer.Option(
        "--out", help="Write the schema to this file instead of printing it.", show_default=False)] = None) -> None:
    """Print the JSON Schema of a config file, for editors that complete and check YAML keys
    (VS Code, any YAML language server)."""
    from dlrun.commands.schema import export_schema

    text = export_schema(out)
    if out is None:
        typer.echo(text, nl=False)
    else:
        typer.echo(f"wrote {out}", err=True)


def env(runs_root: Annotated[Path, typer.Option("--runs", help="The folder that holds run directories.")]
        = DEFAULT_RUNS_ROOT, json_out: JsonOpt = False) -> None:
    """Versions, devices, thread settings and where the data cache and runs are: one block to paste
    into a bug report."""
    from dlrun.commands.environment import device_lines, devices, environment, report_lines

    reporter = Reporter(json_mode=json_out)
    report = environment(runs_root, with_devices=json_out)
    if json_out:
        reporter.emit_json(report)
        return
    for line in report_lines(report):  # at once: only the device list waits for TensorFlow
        reporter.info(line)
    for line in device_lines(devices()):
        reporter.info(line)


def cache(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The data cache: `info` (the default) lists its entries, `clear` removes them."""
    if ctx.invoked_subcommand is None:
        cache_info(json_out)


def cache_info(json_out: JsonOpt = False) -> None:
    """Where the data cache is, its size, and each entry: source, settings, size, last used."""
    from dlrun.commands.cache import info_table
    from dlrun.data.cache_admin import cache_info as core_info

    info = core_info()
    reporter = Reporter(json_mode=json_out)
    reporter.emit_json(info)
    if not info["entries"]:
        reporter.info(f"data cache: {info['location']} is empty")
        return
    if not reporter.out.is_terminal:
        reporter.out.width = max(reporter.out.width, 160)
    reporter.table(info_table(info))


def cache_clear(older_than: Annotated[float | None, typer.Option(
        "--older-than", min=0, metavar="DAYS", help="Only entries not used for this many days.",
        show_default=False)] = None, json_out: JsonOpt = False) -> None:
    """Remove every entry of the data cache, or those not used for --older-than DAYS, and the temporary
    files killed writers left. Entries that a running process uses stay; files the file system will not let
    go of are named with the reason (exit 2)."""
    from dlrun.commands.cache import clear_line, not_removed_line
    from dlrun.data.cache_admin import clear
    from dlrun.errors import DataError

    result = clear(older_than)
    reporter = Reporter(json_mode=json_out)
    reporter.emit_json(result)
    reporter.info(clear_line(result))
    if refused := not_removed_line(result):
        raise DataError(refused)
