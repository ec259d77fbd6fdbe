"""The CLI of the commands over many runs: `dlrun runs` (list and query), `dlrun compare` and
`dlrun track`. Parse, call the core, print; the package registers them and turns a DlrunError into its
message and exit code. No TensorFlow here (`dlrun track` loads it only to log models)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dlrun.cli.options import JsonOpt, complete_run
from dlrun.errors import DlrunError
from dlrun.store.names import DEFAULT_RUNS_ROOT
from dlrun.ui.console import Reporter

PIPED_WIDTH = 160  # piped or redirected: no terminal to fit, but a table still has to end somewhere


def runs(
    runs_root: Annotated[Path, typer.Argument(help="The folder that holds run directories.")] = DEFAULT_RUNS_ROOT,
    where: Annotated[list[str] | None, typer.Option(
        "--where", help="Keep runs where KEY OP VALUE holds; OP: = != < <= > >= ~ (substring). KEY: a metric "
        "(val_accuracy), a run field (status, name, seconds) or a dotted config key (optimizer.name). "
        "Repeatable: all must hold.", show_default=False)] = None,
    sort: Annotated[str | None, typer.Option(
        "--sort", help="Order by KEY, or -KEY for descending (runs without it last). Default: newest first.",
        show_default=False)] = None,
    columns: Annotated[str | None, typer.Option(
        "--columns", help="Show these keys (comma-separated) instead of the key metrics.", show_default=False)] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N runs.", show_default=False)] = None,
    trials: Annotated[bool, typer.Option("--trials", help="Include every sweep's trials.")] = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="Print the runs as CSV on stdout.")] = False,
    wide: Annotated[bool, typer.Option("--wide", help="Show every column, however wide the table gets.")] = False,
    compare: Annotated[tuple[Path, Path] | None, typer.Option(
        "--compare", help="Compare two run directories (short for `dlrun compare A B`).", show_default=False,
        metavar="RUN_A RUN_B", autocompletion=complete_run)] = None,
    json_out: JsonOpt = False,
) -> None:
    """List runs and sweeps, newest first, or the ones a query selects: filter (--where) and sort on any
    metric or config key. The run directory is never cut: in a narrow terminal other columns are left out
    first (--wide, or a pipe, keeps them all)."""
    if compare:
        _compare([*compare], None, None, json_out)
        return
    if csv_out and json_out:
        raise DlrunError("--csv and --json both print the runs on stdout: choose one")
    from dlrun.commands import runs as core
    from dlrun.commands.runs_query import parse_columns

    keys = parse_columns(columns) if columns else None
    result = core.query_runs(runs_root, where or [], sort, keys, limit, trials)
    if csv_out:
        _write_csv(result)
        return
    reporter = Reporter(json_mode=json_out)
    reporter.emit_json(result)
    if not result["runs"]:
        reporter.info(f"no runs in {runs_root}" + (" match" if where else ""))
        return
    _print_runs(reporter, result, keys, wide, title=_title(runs_root, where, sort))
    if any(run["tensorboard"] for run in result["runs"]):
        reporter.info(f"TensorBoard: tensorboard --logdir {runs_root}  (a sweep's HParams table: "
                      "tensorboard --logdir SWEEP_DIR)")


def _title(root: Path, where: list[str] | None, sort: str | None) -> str:
    parts = [f"runs in {root}"] + ([f"where {' and '.join(where)}"] if where else [])
    return " ".join(parts) + (f", by {sort}" if sort else " (newest first)")


def _print_runs(reporter: Reporter, result: dict[str, Any], keys: list[str] | None, wide: bool, title: str) -> None:
    from dlrun.commands.runs_tables import runs_table

    console = reporter.out
    width = console.width if console.is_terminal and not wide else None  # piped: nothing wraps, show it all
    table = runs_table(result["runs"], result["runs_root"], keys, width, title)
    # a path wider than the terminal on its own: printed whole all the same (the terminal wraps it, rich
    # would cut it)
    console.width = max(console.width, console.measure(table, options=console.options.update_width(10_000)).maximum)
    reporter.table(table)


def _write_csv(result: dict[str, Any]) -> None:
    runs = result["runs"]
    extra = result["columns"] or list(dict.fromkeys(k for run in runs for k in sorted(run["metrics"])))
    writer = csv.writer(sys.stdout, lineterminator="\n")
    fields = ["path", "name", "kind", "status", "started", "seconds", "epochs"]
    writer.writerow(fields + [k for k in extra if k not in fields])
    for run in runs:
        values = run["values"] if result["columns"] else run["metrics"]
        writer.writerow([run[f] for f in fields] + ["" if values.get(k) is None else values[k]
                                                    for k in extra if k not in fields])


def compare(
    runs: Annotated[list[Path], typer.Argument(
        help="Two or more run directories, or a sweep directory (its --top best trials).",
        autocompletion=complete_run, show_default=False)],
    top: Annotated[int | None, typer.Option("--top", min=1, help="A sweep's K best trials by its ranking "
                                            "metric (default 5).", show_default=False)] = None,
    plot: Annotated[Path, typer.Option("--plot", help="Where the overlaid learning curves go.")] = Path("compare.png"),
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Draw no picture.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Compare any number of runs, or a sweep's best trials: the config keys that differ (layers matched by
    name and kind), the final metrics side by side, and their learning curves overlaid in one picture."""
    _compare(runs, top, None if no_plot else plot, json_out)


def _compare(runs: list[Path], top: int | None, plot: Path | None, json_out: bool) -> None:
    from dlrun.commands.compare import compare_runs
    from dlrun.commands.runs_tables import compare_tables

    result = compare_runs(*runs, top=top, plot=plot)
    reporter = Reporter(json_mode=json_out)
    if not reporter.out.is_terminal:
        reporter.out.width = max(reporter.out.width, PIPED_WIDTH)
    reporter.emit_json(result)
    for table in compare_tables(result):
        reporter.table(table)
    if plot is not None:
        reporter.info(f"learning curves: {plot}")


def track(
    tracker: Annotated[str, typer.Argument(help="The tracker: mlflow.", metavar="mlflow")],
    runs_root: Annotated[Path, typer.Argument(help="A folder of runs, or one run or sweep directory.")]
    = DEFAULT_RUNS_ROOT,
    uri: Annotated[str | None, typer.Option("--uri", help="The tracking URI (default: sqlite:///RUNS/mlflow.db "
                                            "beside the runs).", show_default=False)] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", help="The MLflow experiment (default: each "
                                                   "run's config name).", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Send existing runs and sweeps to MLflow (a sweep as a parent run with nested trials), or what a run
    sent live missed. Idempotent: what was sent before is not sent again."""
    from dlrun.tracking.backfill import backfill

    if tracker != "mlflow":
        raise DlrunError(f"unknown tracker {tracker!r}: dlrun tracks to mlflow")
    reporter = Reporter(json_mode=json_out)
    result = backfill(runs_root, uri, experiment, reporter.warn)
    reporter.emit_json(result)
    reporter.info(f"MLflow ({result['uri']}): {result['sent']} run(s) and sweep(s) sent, {result['already']} "
                  f"already there" + (f", {result['failed']} failed" if result["failed"] else ""))
