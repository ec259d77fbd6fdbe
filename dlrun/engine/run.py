"""One training run in a run directory: per-epoch checkpoints and metrics, early stopping,
divergence, graceful interruption, and the final artifacts and summary. `dlrun train`, its
resume, and every sweep trial train through `run_training`."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlrun.config import LoadedConfig, config_sha256
from dlrun.config.schema import ExperimentConfig
from dlrun.data import Dataset
from dlrun.engine import backend
from dlrun.engine.checkpoint import check_same_data, load_checkpoint, read_meta, save_checkpoint
from dlrun.engine.distribute import distribution
from dlrun.engine.execution import execution_line, steps_per_execution
from dlrun.engine.fit import FitOutcome, fit_epochs, seeded_model, test_metrics
from dlrun.engine.linear import coefficients
from dlrun.engine.pipeline import Streams
from dlrun.engine.schedules import plateau_lr, set_lr
from dlrun.engine.stopping import best_epoch, early_stop_due, ending, restores_best
from dlrun.engine.tensorboard import RunBoard, open_board
from dlrun.errors import Interrupted
from dlrun.interrupts import StopRequest
from dlrun.metrics import best_metric, direction, epoch_columns, epoch_metrics
from dlrun.store import files, names
from dlrun.store.rundir import RunDir
from dlrun.store.summary import RunClock, write_summary
from dlrun.ui.console import Reporter
from dlrun.weights.read import ARCHIVE_WEIGHTS


def summary_fields(lc: LoadedConfig, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The fields every run summary carries about its config and progress."""
    cfg = lc.config
    return {"name": cfg.name, "seed": cfg.seed, "epochs_run": len(rows), "epochs": cfg.train.epochs,
            "config_sha256": config_sha256(cfg)}


def final_metrics(rows: list[dict[str, Any]], test: dict[str, float], task: str,
                  kept_epoch: int | None = None) -> dict[str, Any]:
    """Summary metrics: the final (test) metrics of the weights the run ends with, the epoch metrics of
    the epoch whose weights those are (`kept_epoch`; default the last row), and the best validation value
    (`best_*`, named as what it is: the best epoch's)."""
    out: dict[str, Any] = dict(test)
    if rows:
        kept = rows[-1] if kept_epoch is None else next(r for r in rows if int(r["epoch"]) == kept_epoch)
        for key in epoch_metrics(task):
            if kept.get(key) not in (None, ""):
                out[key] = float(kept[key])
        val_key = best_metric(task)
        pick = max if direction(val_key) == "max" else min
        values = [float(r[val_key]) for r in rows if r.get(val_key) not in (None, "")]
        if values:
            out[f"best_{val_key}"] = pick(values)
    return out


def write_run_summary(run: RunDir, lc: LoadedConfig, status: str, clock: RunClock, rows: list[dict[str, Any]],
                      **extra: Any) -> dict[str, Any]:
    """Write the run's summary.json: the common fields, the seconds trained so far, then `extra`."""
    return write_summary(run, status, clock.started, summary_fields(lc, rows), seconds=round(clock.elapsed(), 3),
                         **extra)


def write_metrics(run: RunDir, rows: list[dict[str, Any]], task: str, durable: bool = True) -> None:
    """metrics.csv: one row per complete epoch."""
    files.write_csv(run / names.METRICS, epoch_columns(task), rows, durable)


def write_run_records(run: RunDir, lc: LoadedConfig, data: Dataset, model: Any) -> None:
    """model.txt (the layer table), classes.json (the class names), inputs.json (how inputs are prepared)
    and, for a table scaled or encoded by the run, features.json: for the reader, predict and evaluate."""
    from dlrun.data.classes import inputs_record
    from dlrun.engine.model import summary_text

    files.write_text(run / names.MODEL_TXT, summary_text(model))
    if data.class_names is not None:
        files.write_json(run / names.CLASSES, {"class_names": data.class_names})
    files.write_json(run / names.INPUTS, inputs_record(lc.config.data, lc.config.task, data))
    if data.feature_stats is not None:  # how evaluate and predict prepare this run's table inputs
        files.write_json(run / names.FEATURES, data.feature_stats)


def run_base(model: Any, data: Dataset) -> dict[str, Any]:
    """Summary fields about the model, the software and the data (written at start and at the end)."""
    from dlrun.engine.model import param_counts

    return {"params": param_counts(model), "versions": backend.versions(), **data.summary_fields(),
            "notes": data.notes, "devices": backend.gpus() or ["cpu"], "threads": backend.threads(),
            "inter_op_threads": backend.inter_op_threads()}


# A sweep's judge of a trial: (epoch, that epoch's metrics.csv row) -> keep training (True) or prune (False)
EpochJudge = Callable[[int, dict[str, Any]], bool]


def run_training(lc: LoadedConfig, run: RunDir, data: Dataset, reporter: Reporter,
                 stop: StopRequest | None = None, resume_from: Path | None = None,
                 model: Any | None = None, judge: EpochJudge | None = None,
                 streams: Streams | None = None) -> dict[str, Any]:
    """Train into an existing run directory (fresh, or continuing from a checkpoint).

    `model`, when given, must come fresh from `seeded_model`. `judge`, when given, sees every complete
    epoch before the last (after its checkpoint) and may prune the run there. `streams` keeps the training
    stream for the next trials of this process (see engine/pipeline.py). Returns the summary; status
    is `completed`, `diverged` or `pruned`. Raises Interrupted after writing an `interrupted` summary when
    a stop was requested (or a second signal cut the run short).
    """
    cfg: ExperimentConfig = lc.config
    stop, clock = stop or StopRequest(), RunClock()
    model = model if model is not None else seeded_model(lc, data)
    rows: list[dict[str, Any]] = []
    if resume_from is not None:
        check_same_data(read_meta(resume_from), data, resume_from)
        meta = load_checkpoint(resume_from, model)
        rows, clock = list(meta["rows"]), RunClock.resumed(meta)
    per_call = steps_per_execution(model, cfg.train.steps_per_execution, len(data.x_train), cfg.train.batch_size)
    base = {**run_base(model, data), "steps_per_execution": per_call, **distribution(model, cfg.train.batch_size)}
    with files.durable_batch():  # the start records, made durable together (a sweep's trial pays them each)
        write_run_records(run, lc, data, model)
        write_run_summary(run, lc, "running", clock, rows, **base)
        board = open_board(run, cfg, rows)
    reporter.info(execution_line(cfg.train.steps_per_execution, per_call, len(data.x_train), cfg.train.batch_size))
    pruned: list[int] = []

    def on_row(row: dict[str, Any]) -> bool:
        done = [*rows, row]
        meta = {"epoch": row["epoch"], "rows": done, "seconds": clock.elapsed(), "started": clock.started,
                "data_fingerprint": data.fingerprint()}
        es = cfg.train.early_stopping
        with stop.protect():  # a second Ctrl-C waits: checkpoint, rows and metrics.csv stay in step
            if board is not None:  # before the checkpoint: the event files never lack a checkpointed epoch
                board.epoch(row, model)
            # the next epoch's lr, decided from the rows (as a resume decides it; the cut is in the checkpoint)
            if (plateau := cfg.train.reduce_lr_on_plateau) is not None:
                set_lr(model.optimizer, plateau_lr(done, cfg.optimizer.lr, plateau))
            save_checkpoint(run, model, meta)
            if es is not None and restores_best(cfg) and best_epoch(done, es) == row["epoch"]:
                save_checkpoint(run, model, meta, name=names.CHECKPOINT_BEST)
            rows.append(row)
            # not fsynced each epoch: the checkpoint holds the rows durably; the file is rewritten at the end
            write_metrics(run, rows, cfg.task, durable=False)
        return early_stop_due(rows, es) or _pruned_here(judge, row, cfg.train.epochs, pruned)

    outcome, start_epoch = FitOutcome(), len(rows)
    if start_epoch < cfg.train.epochs and not early_stop_due(rows, cfg.train.early_stopping):
        outcome = fit_epochs(model, data, cfg, reporter, stop, start_epoch, cfg.train.epochs, on_row,
                             board.callbacks() if board is not None else None, per_call, streams)
    if not outcome.interrupted:
        try:
            with files.durable_batch():  # the end records, made durable together, summary.json last
                return _finish(lc, run, model, data, rows, clock, outcome.diverged_epoch, base, board,
                               pruned[0] if pruned else None, streams)
        except KeyboardInterrupt:
            pass  # a second signal while saving: the last checkpoint stands
    return _interrupted(lc, run, rows, clock, base, stop)


def _pruned_here(judge: EpochJudge | None, row: dict[str, Any], epochs: int, pruned: list[int]) -> bool:
    """Ask the sweep's judge about this epoch (never the last one); note the epoch when it prunes."""
    if judge is None or row["epoch"] >= epochs or judge(row["epoch"], row):
        return False
    pruned.append(row["epoch"])
    return True


def _interrupted(lc: LoadedConfig, run: RunDir, rows: list[dict[str, Any]], clock: RunClock,
                 base: dict[str, Any], stop: StopRequest) -> dict[str, Any]:
    """Write the `interrupted` summary (naming the signal) and raise Interrupted."""
    signal = stop.signal_name or None
    try:
        with stop.protect():
            write_run_summary(run, lc, "interrupted", clock, rows, last_complete_epoch=len(rows),
                              stopped_by=signal, **base)
    except KeyboardInterrupt:
        pass  # a signal during the write: it is done, and we stop anyway
    by = f" by {signal}" if signal else ""
    raise Interrupted(f"interrupted{by} after epoch {len(rows)}; resume with: dlrun train --resume {run.path}")


def _finish(lc: LoadedConfig, run: RunDir, model: Any, data: Dataset, rows: list[dict[str, Any]],
            clock: RunClock, diverged_epoch: int | None, base: dict[str, Any],
            board: RunBoard | None = None, pruned_epoch: int | None = None,
            streams: Streams | None = None) -> dict[str, Any]:
    """Test metrics, final weights, plot and summary of a run that stopped on its own (or was pruned).

    A pruned trial ends at once: its checkpoint, epoch metrics, plot and summary, but no test metrics, final
    weights or prediction timing, work for a candidate its sweep dropped (only completed trials rank best)."""
    cfg = lc.config
    status, extra = "completed", {}
    if pruned_epoch is not None:
        status, extra = "pruned", {"pruned_epoch": pruned_epoch}
    if diverged_epoch is not None:
        status, extra = "diverged", {"diverged_epoch": diverged_epoch}
        if rows:  # back to the last complete epoch, whose loss was finite
            load_checkpoint(run.checkpoint / names.CHECKPOINT_STATE, model)
    elif restores_best(cfg) and (run.checkpoint / names.CHECKPOINT_BEST).exists():
        extra["restored_best_epoch"] = load_checkpoint(run.checkpoint / names.CHECKPOINT_BEST, model)["epoch"]
    # every summary metric is of the weights the run ends with: the restored best epoch's, else the last's
    kept_epoch = int(extra.get("restored_best_epoch", len(rows))) or None
    extra.update(ending(rows, cfg, kept_epoch, ended_itself=status == "completed"))
    weights_moved = diverged_epoch is not None or "restored_best_epoch" in extra
    final = bool(rows) and status != "pruned"  # a run that diverged in its first epoch has no finite weights
    test = test_metrics(model, data, rows, cfg, weights_moved, streams) if final else {}
    if final:
        from dlrun.engine.predictions import binary_final, predict_ms

        test.update(binary_final(model, data, cfg))  # AUC, precision, recall of a one-unit binary output
        extra["predict_ms"] = predict_ms(model, data.x_train)
    write_metrics(run, rows, cfg.task)
    if final:
        save_model(run, model)
        extra.update(coefficients(model, cfg, data.x_train, data.y_train))
    history_plot(run, rows, cfg.name)
    metrics = final_metrics(rows, test, cfg.task, kept_epoch)
    if board is not None:
        board.finish(metrics, len(rows))
    return write_run_summary(run, lc, status, clock, rows, metrics=metrics, **extra, **base)


def save_model(run: RunDir, model: Any) -> None:
    """Write the full .keras model and the final weights atomically.

    The model is serialized once: the weights file is the archive's own weights member (the file
    `save_weights` would write, in the same layout; ~10 ms a trial less than writing it again)."""
    from dlrun.engine.reuse import plain_penalties

    with files.atomic_path(run / names.MODEL) as archive, plain_penalties(model):
        model.save(archive)
        with files.atomic_path(run / names.WEIGHTS) as tmp:
            _copy_archive_weights(archive, tmp)


def _copy_archive_weights(archive: Path, target: Path) -> None:
    """Copy the weights member of a .keras archive Keras just wrote to `target` (.weights.h5)."""
    with zipfile.ZipFile(archive) as zf, zf.open(ARCHIVE_WEIGHTS) as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def history_plot(run: RunDir, rows: list[dict[str, Any]], title: str,
                 boundaries: list[tuple[int, str]] | None = None) -> None:
    """history.png from the epoch rows (nothing when there are none)."""
    if rows:
        from dlrun.ui.plots import history_plot as draw

        draw(rows, run / names.HISTORY_PLOT, title, boundaries)
