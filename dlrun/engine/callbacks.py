"""Keras callbacks used while training. Imported only on paths that train (it loads Keras)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from dlrun.engine import backend
from dlrun.engine.schedules import current_lr
from dlrun.engine.sse import SSE, fold, penalty
from dlrun.interrupts import StopRequest
from dlrun.ui.console import EpochLines, EpochProgress

keras = backend.keras()


class StepCounter(keras.callbacks.Callback):
    """The first step of the call into TensorFlow that Keras is about to make (`batch`, its index
    within the epoch), so that call can run only the steps left of the epoch (engine.execution)."""

    def __init__(self, steps_per_epoch: int, steps: int):
        super().__init__()
        self.steps_per_epoch, self.steps, self.begin = steps_per_epoch, steps, 0

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.begin = batch

    def due(self) -> int:
        """Steps the coming call runs: a full call, or what is left of the epoch."""
        return max(1, min(self.steps, self.steps_per_epoch - self.begin))


class EpochRecorder(keras.callbacks.Callback):
    """Watches every call into TensorFlow (`steps_per_execution` steps; Keras hands the batch hooks
    the call's last step) for a non-finite loss or a stop request, and hands each complete epoch's
    logs to `on_complete_epoch` (which records metrics and writes the checkpoint). The loss Keras
    reports is the epoch's running mean, so a NaN in any step of the call shows in it."""

    def __init__(self, on_complete_epoch: Callable[[int, dict[str, float], float], bool],
                 stop: StopRequest, progress: EpochProgress | EpochLines | None = None):
        super().__init__()
        self.on_complete_epoch = on_complete_epoch
        self.stop, self.progress = stop, progress
        self.diverged_epoch: int | None = None
        self.interrupted = False
        self._partial = False
        self._epoch = 0
        self._started = 0.0
        self._penalty = 0.0
        self.epoch_lr = 0.0  # the learning rate of the epoch's first step (a schedule moves on within it)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._partial = False
        self._epoch = epoch
        self._started = time.perf_counter()
        self.epoch_lr = current_lr(self.model.optimizer)
        if self.progress:
            if isinstance(self.progress, EpochProgress):
                self._penalty = penalty(self.model)  # for the live display of an sse loss
            self.progress.epoch_begin(epoch)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            self.diverged_epoch = self._epoch + 1
            self._halt()
        elif self.stop.requested:
            self.interrupted = True
            self._halt()
        elif isinstance(self.progress, EpochProgress):
            self.progress.batch_end(batch, fold(logs or {}, self._penalty))

    def _weights_finite(self) -> bool:
        return all(bool(np.isfinite(w).all()) for w in self.model.get_weights())

    def _halt(self) -> None:
        self._partial = True
        self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._partial:
            return  # a stopped epoch is incomplete: nothing is recorded or checkpointed
        logs = {k: float(v) for k, v in (logs or {}).items()}
        logs = fold(logs, penalty(self.model)) if SSE in logs else logs  # sse: over the whole split
        if not all(math.isfinite(v) for k, v in logs.items() if k.endswith("loss")) or not self._weights_finite():
            # the last step can leave non-finite weights behind a finite loss: such an epoch is
            # not complete either, so the checkpoint stays at the last usable one
            self.diverged_epoch = epoch + 1
            self.model.stop_training = True
            return
        seconds = time.perf_counter() - self._started
        if self.progress:
            self.progress.epoch_end(epoch, logs)
        if self.on_complete_epoch(epoch, logs, seconds):
            self.model.stop_training = True
        if self.stop.requested:
            self.interrupted = True
            self.model.stop_training = True
