"""`train.tensorboard.profile_batch`: TensorFlow's profiler around chosen training batches. Imported
only when a run asks for it (it loads Keras)."""

from __future__ import annotations

from typing import Any

from dlrun.engine import backend

keras = backend.keras()


class BatchProfiler(keras.callbacks.Callback):
    """Profiles training batches `first`..`last` (counted from 1 across this process's fits, on
    `board.batches`) into `logdir`, where TensorBoard's Profile tab finds the trace."""

    def __init__(self, board: Any, logdir: str, first: int, last: int):
        super().__init__()
        self.board, self.logdir, self.first, self.last = board, logdir, first, last
        self.active = False

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.board.batches += 1
        if self.board.batches == self.first:
            backend.tf().profiler.experimental.start(self.logdir)
            self.active = True

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.active and self.board.batches >= self.last:
            self._stop()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.active:  # the fit ended inside the range
            self._stop()

    def _stop(self) -> None:
        backend.tf().profiler.experimental.stop()
        self.active = False
