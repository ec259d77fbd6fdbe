"""`dlrun train`: one run from a config, with per-epoch checkpoints, divergence detection,
graceful interruption and resume. Returns the run summary; never exits the process."""

from __future__ import annotations

import math
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from dlrun import backend, checks, rundir
from dlrun.checkpoint import load_checkpoint, save_checkpoint
from dlrun.config import LoadedConfig, config_sha256, dump_config, load_config
from dlrun.console import Reporter, metrics_table
from dlrun.data import Dataset, load_dataset
from dlrun.errors import ConfigError, Interrupted, RunDirError
from dlrun.interrupts import StopRequest, graceful_stop
from dlrun.rundir import RunDir
from dlrun.schema import EarlyStopping, ExperimentConfig


def metric_columns(task: str) -> list[str]:
    """The metrics.csv columns for a task."""
    return rundir.METRIC_COLUMNS if task == "classification" else \
        ["epoch", "loss", "mae", "val_loss", "val_mae", "lr", "seconds"]


def ensure_loaded(config: str | Path | LoadedConfig, overrides: list[str] | None = None) -> LoadedConfig:
    """A LoadedConfig from a path (with overrides) or as given."""
    if isinstance(config, LoadedConfig):
        if overrides:
            raise ValueError("overrides apply to a config path, not to a LoadedConfig")
        return config
    return load_config(config, overrides)


def load_data_for(lc: LoadedConfig) -> Dataset:
    """Load the config's data and run the checks that need it (before anything is written)."""
    cfg = lc.config
    data = load_dataset(cfg.data, cfg.task, cfg.seed)
    checks.check_against_data(lc, data.input_shape, data.num_classes)
    return data


def early_stop_due(rows: list[dict[str, Any]], es: EarlyStopping | None) -> bool:
    """True when `es.monitor` has not improved by `min_delta` for `patience` epochs."""
    if es is None:
        return False
    values = [float(r[es.monitor]) for r in rows if r.get(es.monitor) not in (None, "")]
    if not values:
        return False
    maximize = es.mode == "max" or (es.mode == "auto" and "loss" not in es.monitor)
    best_index, best = 0, values[0]
    for i, value in enumerate(values[1:], start=1):
        if (value - best > es.min_delta) if maximize else (best - value > es.min_delta):
            best_index, best = i, value
    return len(values) - 1 - best_index >= max(es.patience, 1)


def final_metrics(rows: list[dict[str, Any]], test: dict[str, float], task: str) -> dict[str, Any]:
    """Summary metrics: test metrics, the last epoch's, and the best validation value."""
    out: dict[str, Any] = dict(test)
    if rows:
        last = rows[-1]
        for key in metric_columns(task)[1:5]:
            if last.get(key) not in (None, ""):
                out[key] = float(last[key])
        val_key, pick = ("val_accuracy", max) if task == "classification" else ("val_loss", min)
        values = [float(r[val_key]) for r in rows if r.get(val_key) not in (None, "")]
        if values:
            out[f"best_{val_key}"] = pick(values)
    return out


def _summary(run: RunDir, lc: LoadedConfig, status: str, started: float, rows: list[dict[str, Any]],
             **extra: Any) -> dict[str, Any]:
    cfg = lc.config
    summary: dict[str, Any] = {
        "status": status, "run_dir": str(run.path), "name": cfg.name, "seed": cfg.seed,
        "epochs_run": len(rows), "epochs": cfg.train.epochs,
        "started": datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 3), "pid": os.getpid(),
        "config_sha256": config_sha256(cfg),
    }
    summary.update(extra)
    rundir.write_json(run / rundir.SUMMARY, summary)
    return summary


def _write_metrics(run: RunDir, rows: list[dict[str, Any]], task: str) -> None:
    rundir.write_csv(run / rundir.METRICS, metric_columns(task), rows)


def evaluate_model(model: Any, data: Dataset, batch_size: int, task: str) -> dict[str, float]:
    """Loss and accuracy (or mae) on the test split (the training data when there is none)."""
    x, y = data.eval_split()
    values = model.evaluate(x, y, batch_size=max(batch_size, 256), verbose=0, return_dict=True)
    key = "accuracy" if task == "classification" else "mae"
    return {"test_loss": float(values["loss"]), f"test_{key}": float(values[key])}


def run_training(lc: LoadedConfig, run: RunDir, data: Dataset, reporter: Reporter,
                 stop: StopRequest | None = None, resume_from: Path | None = None) -> dict[str, Any]:
    """Train into an existing run directory (fresh, or continuing from a checkpoint).

    Returns the summary; status is `completed` or `diverged`. Raises Interrupted after writing
    an `interrupted` summary when a stop was requested.
    """
    from dlrun.callbacks import EpochRecorder
    from dlrun.model import build_model, param_counts, summary_text
    from dlrun.pipeline import train_stream

    cfg: ExperimentConfig = lc.config
    stop = stop or StopRequest()
    started = time.time()
    backend.setup(cfg.seed, cfg.train.threads)
    model = build_model(lc, data.input_shape)
    rows: list[dict[str, Any]] = []
    if resume_from is not None:
        meta = load_checkpoint(resume_from, model)
        rows = list(meta["rows"])
        started -= float(meta.get("seconds", 0.0))
    rundir.write_text(run / rundir.MODEL_TXT, summary_text(model))
    base = {"params": param_counts(model), "versions": backend.versions(), "data": data.describe(),
            "notes": data.notes, "devices": backend.gpus() or ["cpu"]}
    _summary(run, lc, "running", started, rows, **base)

    def on_epoch(epoch: int, logs: dict[str, float], seconds: float) -> bool:
        row = {"epoch": epoch + 1, **logs, "lr": float(model.optimizer.learning_rate.numpy()),
               "seconds": round(seconds, 4)}
        rows.append(row)
        save_checkpoint(run, model, {"epoch": epoch + 1, "rows": rows, "seconds": time.time() - started})
        _write_metrics(run, rows, cfg.task)
        return early_stop_due(rows, cfg.train.early_stopping)

    start_epoch = len(rows)
    stream, steps = train_stream(data.x_train, data.y_train, cfg.train.batch_size, cfg.seed, start_epoch,
                                 cfg.train.epochs, cfg.train.shuffle)
    validation = (data.x_val, data.y_val) if data.x_val is not None else None
    progress = reporter.epoch_progress(cfg.train.epochs, steps, start_epoch)
    recorder = EpochRecorder(on_epoch, stop, progress)
    if start_epoch < cfg.train.epochs and not early_stop_due(rows, cfg.train.early_stopping):
        try:
            if progress:
                progress.__enter__()
            # Keras validates a dataset-fed fit in batches of 32 unless told otherwise; use the batch
            # evaluate_model uses (63 validation steps per epoch became 2 on 2,000 examples).
            model.fit(stream, epochs=cfg.train.epochs, initial_epoch=start_epoch, steps_per_epoch=steps,
                      validation_data=validation, validation_batch_size=max(cfg.train.batch_size, 256),
                      shuffle=False, verbose=0, callbacks=[recorder])
        except KeyboardInterrupt:
            recorder.interrupted = True
        finally:
            if progress:
                progress.__exit__(None, None, None)
    if recorder.interrupted:
        _summary(run, lc, "interrupted", started, rows, last_complete_epoch=len(rows), **base)
        raise Interrupted(f"interrupted after epoch {len(rows)}; resume with: dlrun train --resume {run.path}")
    status, extra = "completed", {}
    if recorder.diverged_epoch is not None:
        status, extra = "diverged", {"diverged_epoch": recorder.diverged_epoch}
        if rows:
            load_checkpoint(run.checkpoint / rundir.CHECKPOINT_STATE, model)
    test = evaluate_model(model, data, cfg.train.batch_size, cfg.task) if rows else {}
    _write_metrics(run, rows, cfg.task)
    _save_model(run, model)
    _history_plot(run, rows, cfg.name)
    extra.update(_coefficients(model, cfg))
    return _summary(run, lc, status, started, rows, metrics=final_metrics(rows, test, cfg.task), **extra, **base)


def _save_model(run: RunDir, model: Any) -> None:
    with rundir.atomic_path(run / rundir.WEIGHTS) as tmp:
        model.save_weights(tmp)
    with rundir.atomic_path(run / rundir.MODEL) as tmp:
        model.save(tmp)


def _history_plot(run: RunDir, rows: list[dict[str, Any]], title: str) -> None:
    if rows:
        from dlrun.plots import history_plot

        history_plot(rows, run / rundir.HISTORY_PLOT, title)


def _coefficients(model: Any, cfg: ExperimentConfig) -> dict[str, Any]:
    """For a one-layer linear regression, the fitted coefficients (the course's table fit)."""
    if cfg.task != "regression" or len(model.layers) != 1:
        return {}
    weights = model.layers[0].get_weights()
    out = {"weights": weights[0].reshape(-1).tolist()}
    if len(weights) > 1:
        out["bias"] = float(weights[1].reshape(-1)[0])
    return {"coefficients": out}


def train(config: str | Path | LoadedConfig, overrides: list[str] | None = None, run_dir: str | Path | None = None,
          runs_root: str | Path = rundir.DEFAULT_RUNS_ROOT, reporter: Reporter | None = None,
          data: Dataset | None = None) -> dict[str, Any]:
    """Train one run from a config; returns its summary (status `completed` or `diverged`).

    Config and data problems raise before anything is written under `runs_root`.
    """
    reporter = reporter or Reporter(live=False)
    lc = ensure_loaded(config, overrides)
    data = data if data is not None else load_data_for(lc)
    run = rundir.create_run_dir(lc.config.name, runs_root, run_dir)
    rundir.write_text(run / rundir.CONFIG, dump_config(lc.config))
    reporter.info(f"run directory: [bold]{run.path}[/bold]  ({data.describe()})")
    for note in data.notes:
        reporter.warn(note)
    return _train_guarded(lc, run, data, reporter, None)


def _train_guarded(lc: LoadedConfig, run: RunDir, data: Dataset, reporter: Reporter,
                   resume_from: Path | None) -> dict[str, Any]:
    with graceful_stop() as stop:
        try:
            summary = run_training(lc, run, data, reporter, stop, resume_from)
        except (Interrupted, ConfigError):
            raise
        except Exception as exc:
            _mark_failed(run, exc)
            raise
    report_summary(reporter, summary)
    return summary


def _mark_failed(run: RunDir, exc: BaseException) -> None:
    try:
        summary = run.read_summary()
    except RunDirError:
        summary = {"run_dir": str(run.path)}
    summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    rundir.write_json(run / rundir.SUMMARY, summary)


def report_summary(reporter: Reporter, summary: dict[str, Any]) -> None:
    """Print the closing table of a run."""
    shown = {"status": summary["status"], "epochs": summary["epochs_run"], **summary.get("metrics", {}),
             "seconds": summary["seconds"]}
    if "diverged_epoch" in summary:
        shown["diverged at epoch"] = summary["diverged_epoch"]
    reporter.table(metrics_table(f"{summary['name']} — {summary['run_dir']}", shown))


def resume(run_dir: str | Path, config: str | Path | None = None, reporter: Reporter | None = None) -> dict[str, Any]:
    """Continue an interrupted (or crashed) run from its last complete epoch, with its own config."""
    reporter = reporter or Reporter(live=False)
    run = rundir.find_run_dir(run_dir)
    lc = load_config(run / rundir.CONFIG)
    if config is not None and config_sha256(load_config(config).config) != config_sha256(lc.config):
        raise RunDirError(f"{config} differs from the config of {run.path}; a resumed run keeps its own "
                          f"config ({run / rundir.CONFIG}). Drop the config argument, or start a new run.")
    status = run.read_summary().get("status") if run.exists(rundir.SUMMARY) else "running"
    if status in ("completed", "diverged"):
        raise RunDirError(f"{run.path} is {status}; there is nothing to resume")
    checkpoint = run.checkpoint / rundir.CHECKPOINT_STATE
    data = load_data_for(lc)
    reporter.info(f"resuming {run.path}")
    return _train_guarded(lc, run, data, reporter, checkpoint if checkpoint.exists() else None)
