"""TensorBoard event files for a run, written with TensorFlow's summary API after every complete epoch:

- RUN/tb/train and RUN/tb/validation: the scalars Keras' own TensorBoard callback writes per epoch
  (epoch_loss, epoch_accuracy or epoch_mae, and epoch_learning_rate in train); a transfer run's
  stages continue the steps, and a `stage` text marks where each begins;
- RUN/tb: the summary's final metrics (test_loss, test_accuracy, best_val_accuracy, ...);
- opt-in (`train.tensorboard: {histograms: N, profile_batch: B}`): weight histograms every N epochs,
  a profile of training batches.

Steps count epochs from 0, as Keras' callback does: metrics.csv's epoch N is step N - 1.

An epoch is written just before its checkpoint, so the event files never lack an epoch the checkpoint
has. A resumed run keeps from the earlier process's files exactly the events of the epochs its
checkpoint holds (once each) in one file, removes those files, and writes any checkpointed epoch
still missing from its rows: whatever happened to the earlier process, every step appears once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dlrun.config.schema import ExperimentConfig, TensorBoardConfig
from dlrun.engine import backend
from dlrun.engine.events import event_files, scalar_location, write_event_file
from dlrun.engine.hparams import is_sweep_record
from dlrun.metrics import epoch_metrics
from dlrun.store import names
from dlrun.store.rundir import RunDir
from dlrun.weights.walk import leaf_layers

SPLITS = (names.TB_TRAIN, names.TB_VALIDATION)
LOSS_TAG = "epoch_loss"
LR_TAG = "epoch_learning_rate"
STAGE_TAG = "stage"
KEPT_SUFFIX = ".kept"


def read_events(path: Path) -> Iterator[Any]:
    """The events of one file, in order, up to a record cut short by a killed writer."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto import event_pb2

    for record in RawEventFileLoader(str(path)).Load():
        yield event_pb2.Event.FromString(record)


def keep_history(root: Path, steps: int) -> dict[str, set[int]]:
    """Before a (resumed) run writes: in each of RUN/tb/train and RUN/tb/validation, replace the event
    files with one holding each of their events of steps below `steps` once; drop the run's earlier
    final metrics in RUN/tb (a sweep's records there stay). Returns the steps with a loss, per split."""
    present: dict[str, set[int]] = {}
    for split in (*SPLITS, ""):
        folder = root / split if split else root
        old = [p for p in event_files(folder) if not is_sweep_record(p)]
        kept, seen = [], set()
        for path in old if split else []:
            for event in read_events(path):
                key = (event.step, tuple(value.tag for value in event.summary.value))
                if event.HasField("summary") and event.step < steps and key not in seen:
                    seen.add(key)
                    kept.append(event)
        if kept:  # named a second before now: it sorts before the file the new writer opens
            write_event_file(folder, kept, KEPT_SUFFIX, stamp=time.time() - 1)
        for path in old:
            path.unlink(missing_ok=True)
        present[split] = {step for step, tags in seen if LOSS_TAG in tags}
    return present


class RunBoard:
    """The TensorBoard writers of one run (see the module docstring)."""

    def __init__(self, run: RunDir, settings: TensorBoardConfig, task: str, rows: list[dict[str, Any]]):
        self.root, self.settings, self.task = run / names.TENSORBOARD, settings, task
        self.stage: str | None = None
        self.batches = 0  # training batches seen by this process (profile_batch counts them)
        present = keep_history(self.root, len(rows))
        tf = backend.tf()
        self.writers = {split: tf.summary.create_file_writer(str(self.root / split)) for split in SPLITS}
        for row in rows:  # checkpointed epochs the earlier files lacked
            self._scalars(row, {split for split in SPLITS if row["epoch"] - 1 not in present[split]})
        self.flush()

    def _scalars(self, row: dict[str, Any], splits: set[str]) -> None:
        tf = backend.tf()
        step = int(row["epoch"]) - 1
        values = [(*scalar_location(key), row.get(key)) for key in epoch_metrics(self.task)]
        values.append((names.TB_TRAIN, LR_TAG, row.get("lr")))
        for split, tag, value in values:
            if split in splits and value not in (None, ""):
                with self.writers[split].as_default():
                    tf.summary.scalar(tag, float(value), step=step)
        stage = row.get("stage")
        if stage and stage != self.stage:
            if names.TB_TRAIN in splits:
                with self.writers[names.TB_TRAIN].as_default():
                    tf.summary.text(STAGE_TAG, f"stage {stage} starts at epoch {row['epoch']}", step=step)
            self.stage = stage

    def epoch(self, row: dict[str, Any], model: Any) -> None:
        """Write a complete epoch's row (and, every `histograms` epochs, the weights), then flush."""
        self._scalars(row, set(SPLITS))
        every = self.settings.histograms
        if every and int(row["epoch"]) % every == 0:
            self._histograms(model, int(row["epoch"]) - 1)
        self.flush()

    def _histograms(self, model: Any, step: int) -> None:
        tf = backend.tf()
        with self.writers[names.TB_TRAIN].as_default():
            for leaf in leaf_layers(model):
                for weight in leaf.layer.weights:
                    tf.summary.histogram(f"{leaf.name}/{weight.name}", weight, step=step)

    def callbacks(self) -> list[Any]:
        """Keras callbacks the fit needs (the profiler, when asked for)."""
        if self.settings.profile_batch is None:
            return []
        from dlrun.engine.profiler import BatchProfiler

        batches = self.settings.profile_batch
        first, last = batches if isinstance(batches, tuple) else (batches, batches)
        return [BatchProfiler(self, str(self.root / names.TB_TRAIN), first, last)]

    def flush(self) -> None:
        """Hand what was written to the operating system."""
        for writer in self.writers.values():
            writer.flush()

    def finish(self, metrics: dict[str, Any], epochs: int) -> None:
        """Write the final summary metrics (those no epoch has) at the last epoch's step, and close."""
        tf = backend.tf()
        final = [(tag, value) for key, value in metrics.items() if isinstance(value, int | float)
                 for split, tag in [scalar_location(key)] if not split]
        if final:
            writer = tf.summary.create_file_writer(str(self.root))
            with writer.as_default():
                for tag, value in final:
                    tf.summary.scalar(tag, float(value), step=max(epochs - 1, 0))
            writer.close()
        for each in self.writers.values():
            each.close()


def open_board(run: RunDir, cfg: ExperimentConfig, rows: list[dict[str, Any]]) -> RunBoard | None:
    """The run's TensorBoard writers, continuing after `rows` (the epochs already recorded); None
    when `train.tensorboard` is false."""
    settings = cfg.train.tensorboard_settings()
    return RunBoard(run, settings, cfg.task, rows) if settings is not None else None
