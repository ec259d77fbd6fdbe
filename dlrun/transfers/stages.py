"""The training side of `dlrun transfer`: layer trainability, recompiling per stage, the stage loop
with stage-aware checkpoints, and the summary. Imported only when a transfer runs (loads Keras)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dlrun.config import LoadedConfig
from dlrun.config.schema import ExperimentConfig, OptimizerConfig, StageConfig
from dlrun.data import Dataset
from dlrun.engine.checkpoint import check_same_data, load_checkpoint, read_meta, save_checkpoint
from dlrun.engine.fit import FitOutcome, evaluate_model, fit_epochs
from dlrun.engine.model import compile_model, param_counts
from dlrun.engine.run import final_metrics, history_plot, save_model, summary_fields
from dlrun.engine.schedules import plateau_lr, set_lr
from dlrun.engine.stopping import best_epoch, early_stop_due, restores_best
from dlrun.engine.tensorboard import open_board
from dlrun.errors import Interrupted
from dlrun.interrupts import StopRequest
from dlrun.metrics import (
    FINAL_PREFIXES,
    base_name,
    best_metric,
    direction,
    epoch_columns,
    final_names,
    final_prefix,
    improves,
)
from dlrun.store import files, names
from dlrun.store.rundir import RunDir
from dlrun.store.summary import RunClock, write_summary
from dlrun.transfers.plan import StagePlan, TargetLayer
from dlrun.ui.console import Reporter, rows_table
from dlrun.weights.walk import leaf_layers


def describe_targets(model: Any) -> list[TargetLayer]:
    """The model's layers as the (TensorFlow-free) planner sees them."""
    return [TargetLayer(leaf.name, type(leaf.layer).__name__, [tuple(w.shape) for w in leaf.layer.weights],
                        leaf.parent) for leaf in leaf_layers(model)]


def apply_trainability(model: Any, frozen: set[str] | list[str]) -> None:
    """Freeze exactly the named layers. A frozen BatchNormalization also runs in inference mode
    (Keras uses batch statistics only when a layer is trainable), so its moving statistics stay put."""
    for layer in model.layers:
        layer.trainable = True  # propagates into nested models; leaves are set next
    frozen = set(frozen)
    for leaf in leaf_layers(model):
        leaf.layer.trainable = leaf.name not in frozen


def stage_optimizer(cfg: ExperimentConfig, stage: StageConfig) -> OptimizerConfig:
    """The config's optimizer with the stage's overrides (name, lr, momentum) applied."""
    if stage.optimizer is None:
        return cfg.optimizer
    changes = stage.optimizer.model_dump(exclude_none=True)
    return OptimizerConfig.model_validate({**cfg.optimizer.model_dump(), **changes})


def prepare_stage(model: Any, cfg: ExperimentConfig, index: int, plan: StagePlan) -> None:
    """Set the stage's trainability and recompile, so the train step sees exactly its trainable weights."""
    assert cfg.transfer is not None
    apply_trainability(model, plan.frozen)
    compile_model(model, cfg, stage_optimizer(cfg, cfg.transfer.stages[index]))


def transfer_columns(task: str) -> list[str]:
    """metrics.csv columns of a transfer run: train's, with the stage after the epoch."""
    columns = epoch_columns(task)
    return [columns[0], "stage", *columns[1:]]


@dataclass
class StageRun:
    """Everything the stage loop needs, and its progress (what a checkpoint records)."""

    lc: LoadedConfig
    run: RunDir
    data: Dataset
    reporter: Reporter
    stop: StopRequest
    model: Any
    plans: list[StagePlan]
    base: dict[str, Any]
    clock: RunClock
    before: dict[str, float] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    board: Any = None  # the run's TensorBoard writers (engine.tensorboard.RunBoard), while stages run

    @property
    def cfg(self) -> ExperimentConfig:
        return self.lc.config

    def meta(self, stage: int) -> dict[str, Any]:
        """Checkpoint metadata: the stage whose optimizer state is saved, rows, results so far."""
        return {"epoch": len(self.rows), "stage": stage, "rows": self.rows, "before": self.before,
                "stages": self.results, "seconds": self.clock.elapsed(), "started": self.clock.started,
                "data_fingerprint": self.data.fingerprint()}

    def restore(self, meta: dict[str, Any]) -> None:
        """Take progress from a checkpoint's metadata (the run keeps its original start time)."""
        self.rows, self.before, self.results = list(meta["rows"]), dict(meta["before"]), list(meta["stages"])
        if "started" in meta:
            self.clock = RunClock.resumed(meta)
        else:  # a checkpoint from before `started` was recorded: keep the start this session was given
            self.clock = RunClock(started=self.clock.started, offset=float(meta.get("seconds", 0.0)))

    def summary(self, status: str, **extra: Any) -> dict[str, Any]:
        """Write summary.json with the transfer fields."""
        assert self.cfg.transfer is not None
        epochs = sum(s.epochs for s in self.cfg.transfer.stages)
        return write_summary(self.run, status, self.clock.started, summary_fields(self.lc, self.rows), epochs=epochs,
                             before=self.before, stages=self.results, seconds=round(self.clock.elapsed(), 3),
                             **extra, **self.base)


def resume_point(state: StageRun, checkpoint: Any) -> int | None:
    """Restore a checkpoint into the model (compiled for the checkpoint's stage, so its optimizer state
    fits); returns the stage the model is compiled for."""
    meta = read_meta(checkpoint)
    check_same_data(meta, state.data, checkpoint)
    stage = int(meta["stage"])
    prepare_stage(state.model, state.cfg, stage, state.plans[stage])
    state.restore(load_checkpoint(checkpoint, state.model))
    return stage


def run_stages(state: StageRun, compiled: int | None = None) -> dict[str, Any]:
    """Train every stage not yet complete; evaluate after each. Returns the final summary."""
    cfg = state.cfg
    assert cfg.transfer is not None
    state.summary("running")
    state.board = open_board(state.run, cfg, state.rows)
    for i, stage in enumerate(cfg.transfer.stages):
        if i < len(state.results):
            continue
        if compiled != i:
            prepare_stage(state.model, cfg, i, state.plans[i])
        stage_rows = [r for r in state.rows if r["stage"] == stage.name]
        outcome = _fit_stage(state, i, stage, stage_rows)
        if outcome.interrupted:
            state.summary("interrupted", last_complete_epoch=len(state.rows), stage=stage.name)
            raise Interrupted(f"interrupted in stage {stage.name} after epoch {len(state.rows)}; "
                              f"resume with: dlrun transfer --resume {state.run.path}")
        if outcome.diverged_epoch is not None:
            return _diverged(state, stage.name, len(state.rows) + 1, _kept_epoch(state, stage_rows))
        restored = _restore_best(state, i, stage_rows)
        test = evaluate_model(state.model, state.data, cfg.train.batch_size, cfg.task)
        previous = state.results[-1] if state.results else state.before
        kept = restored.get("restored_best_epoch", _kept_epoch(state, stage_rows))
        state.results.append({"name": stage.name, "epochs_run": len(stage_rows),
                              "trainable_params": param_counts(state.model)["trainable"], **test,
                              "improved": _improved(test, previous, compared_metric(cfg, state.data.has_test)),
                              **restored, "kept_epoch": kept})
        save_checkpoint(state.run, state.model, state.meta(i))
        state.reporter.info(f"after {stage.name}: {_describe(test)}")
    return _finish(state, "completed")


def _fit_stage(state: StageRun, i: int, stage: StageConfig, stage_rows: list[dict[str, Any]]) -> FitOutcome:
    """Train stage `i` from where its rows end: a checkpoint per epoch (and of the stage's best epoch
    under restore_best_weights), early stopping on the stage's own rows."""
    cfg, model, es = state.cfg, state.model, state.cfg.train.early_stopping
    assert cfg.transfer is not None
    columns, plateau = transfer_columns(cfg.task), cfg.train.reduce_lr_on_plateau

    def on_row(row: dict[str, Any]) -> bool:
        row = {**row, "epoch": len(state.rows) + 1, "stage": stage.name}
        with state.stop.protect():  # a second Ctrl-C waits: checkpoint, rows and metrics.csv stay in step
            if state.board is not None:  # before the checkpoint, as in a train run
                state.board.epoch(row, model)
            state.rows.append(row)
            stage_rows.append(row)
            if plateau is not None:  # each stage starts from its own lr; the cut goes into the checkpoint
                set_lr(model.optimizer, plateau_lr(stage_rows, stage_optimizer(cfg, stage).lr, plateau))
            save_checkpoint(state.run, model, state.meta(i))
            if es is not None and restores_best(cfg) and best_epoch(stage_rows, es) == len(stage_rows):
                save_checkpoint(state.run, model, state.meta(i), name=names.CHECKPOINT_BEST)
            files.write_csv(state.run / names.METRICS, columns, state.rows)
        return early_stop_due(stage_rows, es)

    if len(stage_rows) >= stage.epochs or early_stop_due(stage_rows, es):
        return FitOutcome()
    offset = sum(s.epochs for s in cfg.transfer.stages[:i])  # planned epochs key the batch order
    state.reporter.info(f"stage [bold]{stage.name}[/bold]: training {', '.join(state.plans[i].trainable)} "
                        f"({param_counts(model)['trainable']} parameters)")
    return fit_epochs(model, state.data, cfg, state.reporter, state.stop, offset + len(stage_rows),
                      offset + stage.epochs, on_row, state.board.callbacks() if state.board else None)


def _restore_best(state: StageRun, i: int, stage_rows: list[dict[str, Any]]) -> dict[str, int]:
    """Under restore_best_weights, end stage `i` with the weights of its best epoch (as train does);
    returns {restored_best_epoch: the run's epoch number}, or {} when it does not apply."""
    es, best_path = state.cfg.train.early_stopping, state.run.checkpoint / names.CHECKPOINT_BEST
    if es is None or not restores_best(state.cfg) or not stage_rows or not best_path.exists():
        return {}
    best = best_epoch(stage_rows, es)
    if best is None or read_meta(best_path).get("stage") != i:
        return {}
    load_checkpoint(best_path, state.model)
    return {"restored_best_epoch": int(stage_rows[best - 1]["epoch"])}


def _kept_epoch(state: StageRun, stage_rows: list[dict[str, Any]]) -> int | None:
    """The run's epoch whose weights the model holds at the end of a stage (without restoring its best): the
    stage's last epoch, else the previous stage's kept epoch (None: still the loaded weights)."""
    if stage_rows:
        return int(stage_rows[-1]["epoch"])
    return state.results[-1].get("kept_epoch") if state.results else None


def compared_metric(cfg: ExperimentConfig, has_test: bool) -> str:
    """The final metric by which a stage is said to improve on the one before (or on the loaded weights):
    what early stopping monitors (accuracy or loss), else the task's (accuracy; loss for regression),
    measured where the final metrics are (`test_`, or `train_` without a test split)."""
    es = cfg.train.early_stopping
    return final_prefix(has_test) + base_name(es.monitor if es is not None else best_metric(cfg.task))


def _improved(now: dict[str, float], previous: dict[str, float], metric: str) -> bool:
    """True when `metric` is better now than before (an equal value is no improvement)."""
    return improves(now[metric], previous[metric], direction(metric))


def _describe(results: dict[str, Any]) -> str:
    return "  ".join(f"{k.split('_', 1)[1]} {v:.4f}" for k, v in results.items()
                     if k.startswith(FINAL_PREFIXES) and isinstance(v, float))


def _diverged(state: StageRun, stage: str, epoch: int, kept_epoch: int | None) -> dict[str, Any]:
    """Keep the last finite checkpoint's weights (those of `kept_epoch`) and finish with status diverged."""
    checkpoint = state.run.checkpoint / names.CHECKPOINT_STATE
    restored = checkpoint.exists()
    if restored:
        load_checkpoint(checkpoint, state.model, optimizer_state=False)
    return _finish(state, "diverged", evaluate=restored, diverged_epoch=epoch, diverged_stage=stage,
                   kept_epoch=kept_epoch if restored else None)


def _finish(state: StageRun, status: str, evaluate: bool = True, **extra: Any) -> dict[str, Any]:
    """Final artifacts (metrics, weights, plot) and the summary, with the final stage's parameter counts.
    `evaluate` is False when the weights are not finite (diverged before any checkpoint)."""
    cfg, run = state.cfg, state.run
    state.base["params"] = param_counts(state.model)
    final_test: dict[str, float] = {}
    if status == "completed" and state.results:
        final_test = {k: v for k, v in state.results[-1].items() if k.startswith(FINAL_PREFIXES)}
        extra["kept_epoch"] = state.results[-1].get("kept_epoch")
    elif evaluate:
        final_test = evaluate_model(state.model, state.data, cfg.train.batch_size, cfg.task)
    kept = extra.setdefault("kept_epoch", None)  # every summary metric is of these weights
    kept_stage = next((r["stage"] for r in state.rows if int(r["epoch"]) == kept), None)
    final_rows = [r for r in state.rows if r["stage"] == kept_stage]  # best_*: the best of the kept's stage
    files.write_csv(run / names.METRICS, transfer_columns(cfg.task), state.rows)
    if evaluate:  # a transfer that diverged before its first checkpoint has no finite weights worth saving
        save_model(run, state.model)
    starts: dict[str, int] = {}
    for k, row in enumerate(state.rows):
        starts.setdefault(row["stage"], k)
    history_plot(run, state.rows, f"{cfg.name} (transfer)", [(k, name) for name, k in starts.items()])
    if len(state.results) >= 2:
        improved, metric = state.results[-1]["improved"], compared_metric(cfg, state.data.has_test)
        extra.update(fine_tune_improved=improved, fine_tune_compared=metric)
        if not improved:
            prev, last_result = state.results[-2], state.results[-1]
            extra["fine_tune_note"] = (f"stage {last_result['name']} did not improve {metric} on {prev['name']} "
                                       f"({prev[metric]:.4f} -> {last_result[metric]:.4f}; {_describe(prev)} -> "
                                       f"{_describe(last_result)})")
            state.reporter.warn(extra["fine_tune_note"])
    metrics = final_metrics(final_rows, final_test, cfg.task, kept)
    if state.board is not None:
        state.board.finish(metrics, len(state.rows))
    summary = state.summary(status, metrics=metrics, **extra)
    report_transfer(state.reporter, summary, cfg.task, state.data.has_test)
    return summary


def report_transfer(reporter: Reporter, summary: dict[str, Any], task: str, has_test: bool = True) -> None:
    """The closing table: before, then each stage's final metrics (test, or training data without a test split)."""
    loss, key = final_names(task, has_test)
    rows = [["before", "-", "-", summary["before"].get(loss), summary["before"].get(key)]]
    for stage in summary["stages"]:
        rows.append([stage["name"], stage["epochs_run"], stage["trainable_params"], stage.get(loss), stage.get(key)])
    title = f"{summary['name']} — {summary['status']} — {summary['run_dir']}"
    columns = ["stage", "epochs", "trainable params", loss.replace("_", " "), key.replace("_", " ")]
    reporter.table(rows_table(title, columns, rows))
