"""`dlrun train`: one run from a config, with per-epoch checkpoints, divergence detection and
graceful interruption (`dlrun.resume` continues a run). Returns the summary; never exits the process."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlrun import backend, checks, rundir
from dlrun.checkpoint import load_checkpoint, save_checkpoint
from dlrun.config import LoadedConfig, dump_config, load_config
from dlrun.console import Reporter
from dlrun.data import Dataset, load_dataset
from dlrun.errors import DlrunError, Interrupted
from dlrun.interrupts import StopRequest, graceful_stop
from dlrun.run_summary import RunClock, mark_failed, report_summary, write_summary
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


def load_data_for(lc: LoadedConfig, use_cache: bool = True) -> Dataset:
    """Load the config's data (through the data cache unless `use_cache` is False) and run the
    checks that need it (before anything is written)."""
    cfg = lc.config
    data = load_dataset(cfg.data, cfg.task, cfg.seed, use_cache=use_cache)
    checks.check_against_data(lc, data.input_shape, data.num_classes)
    return data


def _best_index(rows: list[dict[str, Any]], es: EarlyStopping) -> tuple[int, int] | None:
    """(index of the best epoch, number of epochs recorded) for `es.monitor`, where an epoch counts
    as better only when it beats the best so far by more than `min_delta` (Keras' rule)."""
    values = [float(r[es.monitor]) for r in rows if r.get(es.monitor) not in (None, "")]
    if not values:
        return None
    maximize = es.mode == "max" or (es.mode == "auto" and "loss" not in es.monitor)
    best_index, best = 0, values[0]
    for i, value in enumerate(values[1:], start=1):
        if (value - best > es.min_delta) if maximize else (best - value > es.min_delta):
            best_index, best = i, value
    return best_index, len(values)


def early_stop_due(rows: list[dict[str, Any]], es: EarlyStopping | None) -> bool:
    """True when `es.monitor` has not improved by `min_delta` for `patience` epochs."""
    found = _best_index(rows, es) if es is not None else None
    return found is not None and es is not None and found[1] - 1 - found[0] >= max(es.patience, 1)


def best_epoch(rows: list[dict[str, Any]], es: EarlyStopping) -> int | None:
    """The 1-based epoch early stopping regards as best so far (None when not recorded)."""
    found = _best_index(rows, es)
    return None if found is None else found[0] + 1


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


def _summary(run: RunDir, lc: LoadedConfig, status: str, clock: RunClock, rows: list[dict[str, Any]],
             **extra: Any) -> dict[str, Any]:
    return write_summary(run, lc, status, clock.started, rows, seconds=round(clock.elapsed(), 3), **extra)


def _write_metrics(run: RunDir, rows: list[dict[str, Any]], task: str, durable: bool = True) -> None:
    rundir.write_csv(run / rundir.METRICS, metric_columns(task), rows, durable)


def evaluate_model(model: Any, data: Dataset, batch_size: int, task: str) -> dict[str, float]:
    """Loss and accuracy (or mae) on the test split (the training data when there is none)."""
    from dlrun.pipeline import eval_batch_size, eval_stream

    x, y = data.eval_split()
    values = model.evaluate(eval_stream(x, y, eval_batch_size(batch_size)), verbose=0, return_dict=True)
    key = "accuracy" if task == "classification" else "mae"
    return {"test_loss": float(values["loss"]), f"test_{key}": float(values[key])}


def test_metrics(model: Any, data: Dataset, rows: list[dict[str, Any]], cfg: ExperimentConfig,
                 weights_moved: bool) -> dict[str, float]:
    """The final test metrics. When validation ran on the test split itself and the weights are still
    those of the last epoch, that epoch's validation pass has already measured exactly this: reuse
    it instead of running the same pass again (same batches: `eval_batch_size`). Otherwise evaluate."""
    key = "accuracy" if cfg.task == "classification" else "mae"
    last = rows[-1]
    same_pass = data.x_test is not None and data.x_val is data.x_test and not weights_moved
    if same_pass and all(last.get(k) not in (None, "") for k in ("val_loss", f"val_{key}")):
        return {"test_loss": float(last["val_loss"]), f"test_{key}": float(last[f"val_{key}"])}
    return evaluate_model(model, data, cfg.train.batch_size, cfg.task)


@dataclass
class FitOutcome:
    """How a stretch of epochs ended: stopped by a request, or diverged at a (1-based) epoch."""

    interrupted: bool = False
    diverged_epoch: int | None = None


def fit_epochs(model: Any, data: Dataset, cfg: ExperimentConfig, reporter: Reporter, stop: StopRequest,
               start_epoch: int, end_epoch: int, on_row: Callable[[dict[str, Any]], bool]) -> FitOutcome:
    """Fit epochs `start_epoch`..`end_epoch - 1` (0-based; they key the deterministic batch order).

    `on_row` gets each complete epoch's row (epoch, metrics, lr, seconds) and returns True to stop early.
    """
    from dlrun.callbacks import EpochRecorder
    from dlrun.pipeline import eval_batch_size, eval_stream, train_stream

    def on_epoch(epoch: int, logs: dict[str, float], seconds: float) -> bool:
        return on_row({"epoch": epoch + 1, **logs, "lr": float(model.optimizer.learning_rate.numpy()),
                       "seconds": round(seconds, 4)})

    stream, steps = train_stream(data.x_train, data.y_train, cfg.train.batch_size, cfg.seed, start_epoch,
                                 end_epoch, cfg.train.shuffle)
    has_val = data.x_val is not None and data.y_val is not None
    validation = eval_stream(data.x_val, data.y_val, eval_batch_size(cfg.train.batch_size)) if has_val else None
    progress = reporter.epoch_progress(end_epoch, steps, start_epoch)
    recorder = EpochRecorder(on_epoch, stop, progress)
    try:
        with progress or contextlib.nullcontext():
            # Keras validates a dataset-fed fit in batches of 32 unless told; use evaluate_model's batch
            # (63 validation steps per epoch become 2 on 2,000 examples, and the numbers match evaluate's).
            model.fit(stream, epochs=end_epoch, initial_epoch=start_epoch, steps_per_epoch=steps,
                      validation_data=validation, shuffle=False, verbose=0, callbacks=[recorder])
    except KeyboardInterrupt:
        recorder.interrupted = True
    return FitOutcome(recorder.interrupted, recorder.diverged_epoch)


def seeded_model(lc: LoadedConfig, data: Dataset) -> Any:
    """Seed everything, then build the model: the same initial state in every process.
    A layer that cannot take the data's shape raises ConfigError."""
    from dlrun.model import build_model

    backend.setup(lc.config.seed, lc.config.train.threads, deterministic=lc.config.train.jit_compile is not True)
    return build_model(lc, data.input_shape)


def run_training(lc: LoadedConfig, run: RunDir, data: Dataset, reporter: Reporter,
                 stop: StopRequest | None = None, resume_from: Path | None = None,
                 model: Any | None = None) -> dict[str, Any]:
    """Train into an existing run directory (fresh, or continuing from a checkpoint).

    `model`, when given, must come fresh from `seeded_model`. Returns the summary; status is
    `completed` or `diverged`. Raises Interrupted after writing an `interrupted` summary when a
    stop was requested (or a second signal cut the run short).
    """
    from dlrun.model import param_counts, summary_text

    cfg: ExperimentConfig = lc.config
    stop = stop or StopRequest()
    clock = RunClock()
    model = model if model is not None else seeded_model(lc, data)
    rows: list[dict[str, Any]] = []
    if resume_from is not None:
        meta = load_checkpoint(resume_from, model)
        rows, clock = list(meta["rows"]), RunClock.resumed(meta)
    rundir.write_text(run / rundir.MODEL_TXT, summary_text(model))
    base = {"params": param_counts(model), "versions": backend.versions(), "data": data.describe(),
            "data_cache": data.cache, "notes": data.notes, "devices": backend.gpus() or ["cpu"]}
    _summary(run, lc, "running", clock, rows, **base)

    def on_row(row: dict[str, Any]) -> bool:
        done = [*rows, row]
        meta = {"epoch": row["epoch"], "rows": done, "seconds": clock.elapsed(), "started": clock.started}
        es = cfg.train.early_stopping
        with stop.protect():  # a second Ctrl-C waits: checkpoint, rows and metrics.csv stay in step
            save_checkpoint(run, model, meta)
            if es is not None and _restores_best(cfg) and best_epoch(done, es) == row["epoch"]:
                save_checkpoint(run, model, meta, name=rundir.CHECKPOINT_BEST)
            rows.append(row)
            # not fsynced each epoch: the checkpoint holds the rows durably; the file is rewritten at the end
            _write_metrics(run, rows, cfg.task, durable=False)
        return early_stop_due(rows, es)

    outcome, start_epoch = FitOutcome(), len(rows)
    if start_epoch < cfg.train.epochs and not early_stop_due(rows, cfg.train.early_stopping):
        outcome = fit_epochs(model, data, cfg, reporter, stop, start_epoch, cfg.train.epochs, on_row)
    if not outcome.interrupted:
        try:
            return _finish(lc, run, model, data, rows, clock, outcome.diverged_epoch, base)
        except KeyboardInterrupt:
            pass  # a second signal while saving: the last checkpoint stands
    try:
        with stop.protect():
            _summary(run, lc, "interrupted", clock, rows, last_complete_epoch=len(rows), **base)
    except KeyboardInterrupt:
        pass  # a signal during the write: it is done, and we stop anyway
    raise Interrupted(f"interrupted after epoch {len(rows)}; resume with: dlrun train --resume {run.path}")


def _finish(lc: LoadedConfig, run: RunDir, model: Any, data: Dataset, rows: list[dict[str, Any]],
            clock: RunClock, diverged_epoch: int | None, base: dict[str, Any]) -> dict[str, Any]:
    """Test metrics, final weights, plot and summary of a run that stopped on its own."""
    cfg = lc.config
    status, extra = "completed", {}
    if diverged_epoch is not None:
        status, extra = "diverged", {"diverged_epoch": diverged_epoch}
        if rows:  # back to the last complete epoch, whose loss was finite
            load_checkpoint(run.checkpoint / rundir.CHECKPOINT_STATE, model)
    elif _restores_best(cfg) and (run.checkpoint / rundir.CHECKPOINT_BEST).exists():
        extra["restored_best_epoch"] = load_checkpoint(run.checkpoint / rundir.CHECKPOINT_BEST, model)["epoch"]
    weights_moved = diverged_epoch is not None or "restored_best_epoch" in extra
    test = test_metrics(model, data, rows, cfg, weights_moved) if rows else {}
    _write_metrics(run, rows, cfg.task)
    if rows:  # a run that diverged in its first epoch has no finite weights worth saving
        save_model(run, model)
        extra.update(_coefficients(model, cfg))
    _history_plot(run, rows, cfg.name)
    return _summary(run, lc, status, clock, rows, metrics=final_metrics(rows, test, cfg.task), **extra, **base)


def save_model(run: RunDir, model: Any) -> None:
    """Write the final weights and the full .keras model atomically."""
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
          data: Dataset | None = None, use_cache: bool = True) -> dict[str, Any]:
    """Train one run from a config; returns its summary (status `completed` or `diverged`).

    Config, data and model-building problems raise before anything is written under `runs_root`.
    """
    reporter = reporter or Reporter(live=False)
    lc = ensure_loaded(config, overrides)
    data = data if data is not None else load_data_for(lc, use_cache)
    model = seeded_model(lc, data)  # before the run directory: a model that cannot be built leaves nothing
    with graceful_stop() as stop:
        run = rundir.create_run_dir(lc.config.name, runs_root, run_dir)
        rundir.write_text(run / rundir.CONFIG, dump_config(lc.config))
        _summary(run, lc, "running", RunClock(), [])
        reporter.info(f"run directory: [bold]{run.path}[/bold]  ({data.describe()})")
        for note in data.notes:
            reporter.warn(note)
        return train_guarded(lc, run, data, reporter, None, stop, model)


def train_guarded(lc: LoadedConfig, run: RunDir, data: Dataset, reporter: Reporter, resume_from: Path | None,
                  stop: StopRequest, model: Any | None = None) -> dict[str, Any]:
    """run_training, marking the run `failed` when something unexpected (not a DlrunError) breaks it."""
    try:
        summary = run_training(lc, run, data, reporter, stop, resume_from, model)
    except DlrunError:
        raise
    except Exception as exc:
        mark_failed(run, exc)
        raise
    report_summary(reporter, summary)
    return summary


def _restores_best(cfg: ExperimentConfig) -> bool:
    es = cfg.train.early_stopping
    return es is not None and es.restore_best_weights
