"""The training side of `dlrun transfer`: layer trainability, recompiling per stage, the stage loop
with stage-aware checkpoints, and the summary. Imported only when a transfer runs (loads Keras)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from dlrun.config import LoadedConfig
from dlrun.config.schema import ExperimentConfig, OptimizerConfig, StageConfig
from dlrun.data import Dataset
from dlrun.engine.checkpoint import load_checkpoint, read_meta, save_checkpoint
from dlrun.engine.fit import FitOutcome, evaluate_model, fit_epochs
from dlrun.engine.model import compile_model, param_counts
from dlrun.engine.run import final_metrics, history_plot, save_model, summary_fields
from dlrun.engine.stopping import early_stop_due
from dlrun.engine.tensorboard import open_board
from dlrun.errors import Interrupted
from dlrun.interrupts import StopRequest
from dlrun.metrics import direction, epoch_columns, task_metric
from dlrun.store import files, names
from dlrun.store.rundir import RunDir
from dlrun.store.summary import write_summary
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
    started: float
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
                "stages": self.results, "seconds": time.time() - self.started}

    def restore(self, meta: dict[str, Any]) -> None:
        """Take progress from a checkpoint's metadata."""
        self.rows, self.before, self.results = list(meta["rows"]), dict(meta["before"]), list(meta["stages"])
        self.started -= float(meta.get("seconds", 0.0))

    def summary(self, status: str, **extra: Any) -> dict[str, Any]:
        """Write summary.json with the transfer fields."""
        assert self.cfg.transfer is not None
        epochs = sum(s.epochs for s in self.cfg.transfer.stages)
        return write_summary(self.run, status, self.started, summary_fields(self.lc, self.rows), epochs=epochs,
                             before=self.before, stages=self.results, **extra, **self.base)


def resume_point(state: StageRun, checkpoint: Any) -> int | None:
    """Restore a checkpoint into the model (compiled for the checkpoint's stage, so its optimizer state
    fits); returns the stage the model is compiled for."""
    stage = int(read_meta(checkpoint)["stage"])
    prepare_stage(state.model, state.cfg, stage, state.plans[stage])
    state.restore(load_checkpoint(checkpoint, state.model))
    return stage


def run_stages(state: StageRun, compiled: int | None = None) -> dict[str, Any]:
    """Train every stage not yet complete; evaluate after each. Returns the final summary."""
    cfg, model = state.cfg, state.model
    assert cfg.transfer is not None
    stages, columns = cfg.transfer.stages, transfer_columns(cfg.task)
    state.summary("running")
    state.board = open_board(state.run, cfg, state.rows)
    for i, stage in enumerate(stages):
        if i < len(state.results):
            continue
        if compiled != i:
            prepare_stage(model, cfg, i, state.plans[i])
        trainable = param_counts(model)["trainable"]
        stage_rows = [r for r in state.rows if r["stage"] == stage.name]
        offset = sum(s.epochs for s in stages[:i])  # planned epochs key the batch order

        def on_row(row: dict[str, Any], i: int = i, stage: StageConfig = stage,
                   stage_rows: list[dict[str, Any]] = stage_rows) -> bool:
            row = {**row, "epoch": len(state.rows) + 1, "stage": stage.name}
            with state.stop.protect():  # a second Ctrl-C waits: checkpoint, rows and metrics.csv stay in step
                if state.board is not None:  # before the checkpoint, as in a train run
                    state.board.epoch(row, model)
                state.rows.append(row)
                stage_rows.append(row)
                save_checkpoint(state.run, model, state.meta(i))
                files.write_csv(state.run / names.METRICS, columns, state.rows)
            return early_stop_due(stage_rows, cfg.train.early_stopping)

        outcome = FitOutcome()
        if len(stage_rows) < stage.epochs and not early_stop_due(stage_rows, cfg.train.early_stopping):
            state.reporter.info(f"stage [bold]{stage.name}[/bold]: training {', '.join(state.plans[i].trainable)} "
                                f"({trainable} parameters)")
            outcome = fit_epochs(model, state.data, cfg, state.reporter, state.stop, offset + len(stage_rows),
                                 offset + stage.epochs, on_row, state.board.callbacks() if state.board else None)
        if outcome.interrupted:
            state.summary("interrupted", last_complete_epoch=len(state.rows), stage=stage.name)
            raise Interrupted(f"interrupted in stage {stage.name} after epoch {len(state.rows)}; "
                              f"resume with: dlrun transfer --resume {state.run.path}")
        if outcome.diverged_epoch is not None:
            return _diverged(state, stage.name, len(state.rows) + 1)
        test = evaluate_model(model, state.data, cfg.train.batch_size, cfg.task)
        previous = state.results[-1] if state.results else state.before
        state.results.append({"name": stage.name, "epochs_run": len(stage_rows), "trainable_params": trainable,
                              **test, "improved": _improved(test, previous, cfg.task)})
        save_checkpoint(state.run, model, state.meta(i))
        state.reporter.info(f"after {stage.name}: {_describe(test)}")
    return _finish(state, "completed")


def _improved(now: dict[str, float], previous: dict[str, float], task: str) -> bool:
    key = f"test_{task_metric(task)}"
    return now[key] > previous[key] if direction(key) == "max" else now[key] < previous[key]


def _describe(test: dict[str, Any]) -> str:
    return "  ".join(f"{k.removeprefix('test_')} {v:.4f}" for k, v in test.items() if k.startswith("test_"))


def _diverged(state: StageRun, stage: str, epoch: int) -> dict[str, Any]:
    """Keep the last finite checkpoint's weights and finish with status diverged."""
    checkpoint = state.run.checkpoint / names.CHECKPOINT_STATE
    restored = checkpoint.exists()
    if restored:
        load_checkpoint(checkpoint, state.model, optimizer_state=False)
    return _finish(state, "diverged", evaluate=restored, diverged_epoch=epoch, diverged_stage=stage)


def _finish(state: StageRun, status: str, evaluate: bool = True, **extra: Any) -> dict[str, Any]:
    """Final artifacts (metrics, weights, plot) and the summary, with the final stage's parameter counts.
    `evaluate` is False when the weights are not finite (diverged before any checkpoint)."""
    cfg, run = state.cfg, state.run
    state.base["params"] = param_counts(state.model)
    final_test: dict[str, float] = {}
    if status == "completed" and state.results:
        final_test = {k: v for k, v in state.results[-1].items() if k.startswith("test_")}
    elif evaluate:
        final_test = evaluate_model(state.model, state.data, cfg.train.batch_size, cfg.task)
    last = state.results[-1]["name"] if state.results else None
    final_rows = [r for r in state.rows if r["stage"] == last]
    files.write_csv(run / names.METRICS, transfer_columns(cfg.task), state.rows)
    save_model(run, state.model)
    starts: dict[str, int] = {}
    for k, row in enumerate(state.rows):
        starts.setdefault(row["stage"], k)
    history_plot(run, state.rows, f"{cfg.name} (transfer)", [(k, name) for name, k in starts.items()])
    if len(state.results) >= 2:
        improved = state.results[-1]["improved"]
        extra["fine_tune_improved"] = improved
        if not improved:
            prev, last_result = state.results[-2], state.results[-1]
            extra["fine_tune_note"] = (f"stage {last_result['name']} did not improve on {prev['name']} "
                                       f"({_describe(prev)} -> {_describe(last_result)})")
            state.reporter.warn(extra["fine_tune_note"])
    metrics = final_metrics(final_rows, final_test, cfg.task)
    if state.board is not None:
        state.board.finish(metrics, len(state.rows))
    summary = state.summary(status, metrics=metrics, **extra)
    report_transfer(state.reporter, summary, cfg.task)
    return summary


def report_transfer(reporter: Reporter, summary: dict[str, Any], task: str) -> None:
    """The closing table: before, then each stage's test metrics."""
    key = f"test_{task_metric(task)}"
    rows = [["before", "-", "-", summary["before"].get("test_loss"), summary["before"].get(key)]]
    for stage in summary["stages"]:
        rows.append([stage["name"], stage["epochs_run"], stage["trainable_params"], stage["test_loss"], stage[key]])
    title = f"{summary['name']} — {summary['status']} — {summary['run_dir']}"
    columns = ["stage", "epochs", "trainable params", "test loss", key.replace("_", " ")]
    reporter.table(rows_table(title, columns, rows))
