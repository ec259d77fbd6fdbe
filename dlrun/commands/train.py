"""`dlrun train`: one run from a config, with per-epoch checkpoints, divergence detection and
graceful interruption (`dlrun.resume` continues a run). Returns the summary; never exits the process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlrun.config import LoadedConfig, dump_config, ensure_loaded
from dlrun.data import Dataset, load_checked
from dlrun.data.splits import VALIDATION_ON_TEST
from dlrun.engine.fit import seeded_model
from dlrun.engine.run import run_training, write_run_summary
from dlrun.errors import DlrunError, StorageError
from dlrun.interrupts import StopRequest, graceful_stop
from dlrun.store import files, names
from dlrun.store.files import storage_problem
from dlrun.store.lock import exclusive_lock
from dlrun.store.rundir import RunDir, check_writable, create_run_dir
from dlrun.store.status import fail_for_storage, mark_failed
from dlrun.store.summary import RunClock
from dlrun.tracking.live import resolve as resolve_tracking
from dlrun.tracking.live import tracked_run
from dlrun.ui.console import Reporter, metrics_table


def train(config: str | Path | LoadedConfig, overrides: list[str] | None = None, run_dir: str | Path | None = None,
          runs_root: str | Path = names.DEFAULT_RUNS_ROOT, reporter: Reporter | None = None,
          data: Dataset | None = None, use_cache: bool = True, track: str | None = None) -> dict[str, Any]:
    """Train one run from a config into a new run directory.

    Args:
        config: A YAML path, or a config already loaded with `load_config`.
        overrides: `KEY=VALUE` strings applied after the file (only with a path).
        run_dir: Write into this new or empty directory instead of `runs_root/<name>-<time>`.
        runs_root: The parent of new run directories.
        reporter: Where progress and tables go (default: lines and tables on stdout, no progress
            bars; `dlrun.ui.console.Reporter(json_mode=True)` prints nothing).
        data: Data already loaded for this config (else it is loaded here).
        use_cache: Serve prepared data from the data cache (and fill it).
        track: Also mirror the run to a tracker: `mlflow` (the local store beside `runs_root`) or
            `mlflow=URI` (else the config's `tracking:` section decides).

    Returns:
        The run's summary (as in summary.json): `status` is `completed` or `diverged`.

    Raises:
        ConfigError, DataError: before anything is written under `runs_root`.
        RunDirError: the run directory cannot be created (e.g. a read-only runs folder).
        StorageError: the disk filled up (or turned read-only) while training; the run is `failed`, resume it.
        Interrupted: after saving, when Ctrl-C / SIGTERM stopped training.
    """
    reporter = reporter or Reporter(live=False)
    lc = ensure_loaded(config, overrides)
    check_writable(run_dir, runs_root)  # a read-only runs folder is refused before any data is read
    tracker = resolve_tracking(lc.config.tracking, track, Path(run_dir).parent if run_dir else runs_root)
    if data is None:
        with reporter.progress() as progress:
            data = load_checked(lc, use_cache, progress)
    model = seeded_model(lc, data)  # before the run directory: a model that cannot be built leaves nothing
    with graceful_stop() as stop:
        run = create_run_dir(lc.config.name, runs_root, run_dir)
        with exclusive_lock(run.path, "being trained"):
            try:
                files.write_text(run / names.CONFIG, dump_config(lc.config))
                write_run_summary(run, lc, "running", RunClock(), [])
            except OSError as exc:
                raise StorageError(f"cannot write the new run directory {run.path}: "
                                   f"{storage_problem(exc) or exc}; free some space and train again") from None
            reporter.info(f"run directory: [bold]{run.path}[/bold]  ({data.describe()})")
            for note in [*data.notes, *filter(None, [data.validation_warning()])]:
                reporter.warn(note)
            with tracked_run(tracker, run.path, reporter.warn):
                return train_guarded(lc, run, data, reporter, None, stop, model)


def train_guarded(lc: LoadedConfig, run: RunDir, data: Dataset, reporter: Reporter, resume_from: Path | None,
                  stop: StopRequest, model: Any | None = None) -> dict[str, Any]:
    """run_training, marking the run `failed` when something unexpected (not a DlrunError) breaks it,
    or a full or read-only disk stops it (then a StorageError saying how to resume), then the closing table."""
    try:
        summary = run_training(lc, run, data, reporter, stop, resume_from, model)
    except DlrunError:
        raise
    except OSError as exc:
        if storage_problem(exc) is None:
            mark_failed(run, exc)
            raise
        raise fail_for_storage(run, exc, f"dlrun train --resume {run.path}") from None
    except Exception as exc:
        mark_failed(run, exc)
        raise
    report_summary(reporter, summary)
    return summary


def report_summary(reporter: Reporter, summary: dict[str, Any]) -> None:
    """Print how the run ended (early stopping, the weights it kept) and its closing table: the metrics of
    the weights it kept."""
    if summary.get("stopping"):
        reporter.info(summary["stopping"])
    shown = {"status": summary["status"], "epochs": summary["epochs_run"]}
    if summary.get("kept_epoch") not in (None, summary["epochs_run"]):
        shown["kept weights of epoch"] = summary["kept_epoch"]
    shown.update({**summary.get("metrics", {}), "seconds": summary["seconds"]})
    if "diverged_epoch" in summary:
        shown["diverged at epoch"] = summary["diverged_epoch"]
    if summary.get("validation") == VALIDATION_ON_TEST:  # the val_* and best_* rows are the test split
        shown["validation"] = VALIDATION_ON_TEST
    reporter.table(metrics_table(f"{summary['name']} — {summary['run_dir']}", shown))
    for line in coefficient_lines(summary.get("coefficients")):
        reporter.info(line)


def coefficient_lines(coefficients: dict[str, Any] | None) -> list[str]:
    """A linear regression's final weights and bias, and the least-squares optimum beside them:
    `weights 0.265 0.497 -0.446  bias -0.191  SSE 1.99`, then `least squares: weights ...`."""
    def line(fit: dict[str, Any]) -> str:
        text = "weights " + " ".join(f"{w:.4g}" for w in fit["weights"])
        text += f"  bias {fit['bias']:.4g}" if "bias" in fit else ""
        return text + (f"  SSE {fit['sse']:.4g}" if "sse" in fit else "")

    if not coefficients:
        return []
    lines = [f"final:         {line(coefficients)}"]
    if "optimum" in coefficients:
        lines.append(f"least squares: {line(coefficients['optimum'])}")
    return lines
