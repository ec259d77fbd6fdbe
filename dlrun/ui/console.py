"""Console output: rich progress while training, closing tables, and quiet modes.

Live displays appear only when stdout is a terminal and --json is off. When stdout is not a terminal
(a pipe, a file, a `!dlrun` cell in Jupyter or Colab) each finished epoch is one plain line, flushed
at once. With --json nothing but the JSON object goes to stdout and no epoch lines are printed
anywhere. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


class Reporter:
    """Where human output goes. `live` shows progress bars; `quiet` (json mode) prints nothing."""

    def __init__(self, json_mode: bool = False, live: bool | None = None, debug: bool | None = None):
        self.json_mode = json_mode
        self.debug = bool(os.environ.get("DLRUN_DEBUG")) if debug is None else debug  # show tracebacks
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.live = (not json_mode and sys.stdout.isatty()) if live is None else live

    def info(self, message: str) -> None:
        """A line for the human reader (suppressed with --json)."""
        if not self.json_mode:
            self.out.print(message)

    def warn(self, message: str) -> None:
        """A warning on stderr (kept with --json: stdout stays clean)."""
        self.err.print(f"[yellow]warning:[/yellow] {message}")

    def table(self, table: Table) -> None:
        """Print a rich table (suppressed with --json)."""
        if not self.json_mode:
            self.out.print(table)

    def emit_json(self, data: Any) -> None:
        """Print `data` as one JSON object on stdout (json mode only)."""
        if self.json_mode:
            sys.stdout.write(json.dumps(data, default=str) + "\n")
            sys.stdout.flush()

    def epoch_progress(self, epochs: int, steps: int, start_epoch: int = 0) -> EpochProgress | EpochLines | None:
        """A live per-epoch progress display on a terminal, one plain line per epoch elsewhere, or
        None with --json."""
        if self.live:
            return EpochProgress(self.out, epochs, steps, start_epoch)
        return None if self.json_mode else EpochLines(self.out, epochs)

    def progress(self) -> StepProgress:
        """Progress of long steps other than training (decoding an image folder, writing the data cache,
        reading a large weights file): a `(what, done, total)` callback to pass down to them, shown on a
        terminal only. Use it as a context manager: the display ends with the block."""
        return StepProgress(self.out if self.live else None)


class StepProgress:
    """A `(what, done, total)` callback showing a transient bar per step once that step has taken
    DELAY seconds (quick steps show nothing), and nothing at all without a console. `total` 0 means
    not known yet."""

    DELAY = 0.5

    def __init__(self, console: Console | None):
        self.console = console
        self.display: Progress | None = None
        self.tasks: dict[str, Any] = {}
        self.first: dict[str, float] = {}

    def __call__(self, what: str, done: int, total: int) -> None:
        if self.console is None:
            return
        now = time.monotonic()
        started = self.first.setdefault(what, now)
        if self.display is None:
            if now - started < self.DELAY or (total and done >= total):
                return
            self.display = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TimeRemainingColumn(), console=self.console, transient=True)
            self.display.start()
        if what not in self.tasks:
            self.tasks[what] = self.display.add_task(what, total=total or None)
        self.display.update(self.tasks[what], completed=done, total=total or None)

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.display is not None:
            self.display.stop()
            self.display = None


class EpochProgress:
    """Batches, loss, accuracy and ETA for the current epoch; one summary line per finished epoch."""

    def __init__(self, console: Console, epochs: int, steps: int, start_epoch: int):
        self.console, self.epochs, self.steps = console, epochs, steps
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("{task.fields[metrics]}"), TimeRemainingColumn(),
            console=console, transient=True)
        self.task = self.progress.add_task("train", total=steps, epoch=start_epoch + 1, epochs=epochs, metrics="")
        self.started = time.monotonic()

    def __enter__(self) -> EpochProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def epoch_begin(self, epoch: int) -> None:
        self.started = time.monotonic()
        # reset() replaces every field, so all of them are passed again
        self.progress.reset(self.task, total=self.steps, epoch=epoch + 1, epochs=self.epochs, metrics="")

    def batch_end(self, batch: int, logs: dict[str, float]) -> None:
        """After the step `batch` (0-based; Keras names a call's last step as if it were full, so a
        short last call of an epoch can name one past the end)."""
        self.progress.update(self.task, completed=min(batch + 1, self.steps), metrics=format_metrics(logs))

    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        seconds = time.monotonic() - self.started
        self.progress.console.print(epoch_line(epoch, self.epochs, logs, seconds))


class EpochLines:
    """Without a terminal: one line per finished epoch (rich flushes each print), no bars."""

    def __init__(self, console: Console, epochs: int):
        self.console, self.epochs = console, epochs
        self.started = time.monotonic()

    def __enter__(self) -> EpochLines:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def epoch_begin(self, epoch: int) -> None:
        self.started = time.monotonic()

    def batch_end(self, batch: int, logs: dict[str, float]) -> None:
        return None

    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.console.print(epoch_line(epoch, self.epochs, logs, time.monotonic() - self.started), markup=False)


def epoch_line(epoch: int, epochs: int, logs: dict[str, Any], seconds: float) -> str:
    """`epoch 3/10  loss 0.1234  accuracy 0.9876  (1.2s)` for the 0-based `epoch`."""
    return f"epoch {epoch + 1}/{epochs}  {format_metrics(logs)}  ({seconds:.1f}s)"


def format_metrics(logs: dict[str, Any]) -> str:
    """`loss 0.1234  accuracy 0.9876 ...` for every numeric entry of `logs`."""
    return "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if isinstance(v, int | float))


def metrics_table(title: str, metrics: dict[str, Any]) -> Table:
    """A two-column table of metric name and value."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table


def rows_table(title: str, columns: list[str], rows: list[list[Any]], styles: list[str] | None = None) -> Table:
    """A table of rows; `styles` gives an optional rich style per row."""
    table = Table(title=title, header_style="bold")
    for column in columns:
        table.add_column(column)
    for i, row in enumerate(rows):
        cells = [f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v)) for v in row]
        table.add_row(*cells, style=(styles[i] if styles else None))
    return table


def format_bytes(size: float | None) -> str:
    """`512 B`, `12.3 KiB`, `4.5 MiB`, `1.2 GiB`."""
    if size is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
