"""The epoch loop around Keras' `fit`, and evaluation: the deterministic training stream, the
in-order validation stream, and the callback that records complete epochs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dlrun.config import LoadedConfig
from dlrun.config.schema import ExperimentConfig
from dlrun.data import Dataset
from dlrun.engine import backend
from dlrun.engine.augment import augmentation
from dlrun.engine.pipeline import Streams, eval_batch_size, eval_stream, train_stream
from dlrun.interrupts import StopRequest
from dlrun.metrics import final_prefix, task_metric
from dlrun.ui.console import Reporter


@dataclass
class FitOutcome:
    """How a stretch of epochs ended: stopped by a request, or diverged at a (1-based) epoch."""

    interrupted: bool = False
    diverged_epoch: int | None = None


def seeded_model(lc: LoadedConfig, data: Dataset, unsafe: bool = False, distributed: bool = True) -> Any:
    """Seed everything, then build the model (its `model.base` too): the same initial state in every
    process. `distributed` False: never under `train.distribute`'s strategy (a model that only evaluates
    or predicts needs none of the training machine's devices). A layer that cannot take the data's shape
    raises ConfigError."""
    return seeded_model_for_shape(lc, data.input_shape, unsafe, distributed)


def seeded_model_for_shape(lc: LoadedConfig, input_shape: tuple[int, ...], unsafe: bool = False,
                           distributed: bool = True) -> Any:
    """seeded_model for inputs of `input_shape` (a run's recorded shape: predict and export load no data)."""
    from dlrun.engine.base_model import build_with_base
    from dlrun.weights import check_model_sources

    check_model_sources(lc.config)  # a missing or hostile base file is refused before TensorFlow loads
    backend.setup_for(lc.config)
    return build_with_base(lc, tuple(input_shape), unsafe, distributed)[0]


def measure(model: Any, x: Any, y: Any, batch_size: int, task: str, streams: Streams | None = None) -> dict[str, float]:
    """Loss and accuracy (or mae) over the arrays as one whole split, in batches of
    `eval_batch_size(batch_size)`; the numbers do not depend on that batch size. `streams`: where the
    stream is kept for the next trials of this process."""
    from dlrun.engine.sse import fold, penalty

    stream = (streams.evaluation if streams else eval_stream)(x, y, eval_batch_size(batch_size))
    values = model.evaluate(stream, verbose=0, return_dict=True)
    values = fold(values, penalty(model)) if "sse" in values else values
    key = task_metric(task)
    return {"loss": float(values["loss"]), key: float(values[key])}


def evaluate_model(model: Any, data: Dataset, batch_size: int, task: str,
                   streams: Streams | None = None) -> dict[str, float]:
    """Final metrics: loss and accuracy (or mae) on the test split as `test_*`, or, when the data has no
    test split, on the training data as `train_*` (never labelled as held-out numbers)."""
    x, y = data.eval_split()
    prefix = final_prefix(data.has_test)
    return {prefix + name: value for name, value in measure(model, x, y, batch_size, task, streams).items()}


def test_metrics(model: Any, data: Dataset, rows: list[dict[str, Any]], cfg: ExperimentConfig,
                 weights_moved: bool, streams: Streams | None = None) -> dict[str, float]:
    """The final metrics (evaluate_model). When validation ran on the test split itself and the weights
    are still those of the last epoch, that epoch's validation pass has already measured exactly this:
    reuse it instead of running the same pass again (same batches: `eval_batch_size`)."""
    key = task_metric(cfg.task)
    last = rows[-1]
    if data.has_test and data.val_is_test and not weights_moved \
            and all(last.get(k) not in (None, "") for k in ("val_loss", f"val_{key}")):
        return {"test_loss": float(last["val_loss"]), f"test_{key}": float(last[f"val_{key}"])}
    return evaluate_model(model, data, cfg.train.batch_size, cfg.task, streams)


def fit_epochs(model: Any, data: Dataset, cfg: ExperimentConfig, reporter: Reporter, stop: StopRequest,
               start_epoch: int, end_epoch: int, on_row: Callable[[dict[str, Any]], bool],
               callbacks: list[Any] | None = None, steps_per_call: int | None = None,
               streams: Streams | None = None) -> FitOutcome:
    """Fit epochs `start_epoch`..`end_epoch - 1` (0-based; they key the deterministic batch order).

    `on_row` gets each complete epoch's row (epoch, metrics, lr, seconds) and returns True to stop early;
    `callbacks` are more Keras callbacks (e.g. the TensorBoard profiler).
    `steps_per_call`: training steps per call into TensorFlow (default: `execution.steps_per_execution`
    for the config); any value trains on the same batches with the same results.
    `streams`: where the training and validation streams are kept for the next trials of this process
    (else built for this fit).
    """
    from dlrun.engine.callbacks import EpochRecorder
    from dlrun.engine.execution import exact_executions, steps_per_execution

    def on_epoch(epoch: int, logs: dict[str, float], seconds: float) -> bool:
        return on_row({"epoch": epoch + 1, **logs, "lr": recorder.epoch_lr,
                       "seconds": round(seconds, 4)})

    stream, steps = (streams.train if streams else train_stream)(data.x_train, data.y_train, cfg.train.batch_size,
                                                                 cfg.seed, start_epoch, end_epoch, cfg.train.shuffle,
                                                                 augmentation(cfg.data))
    has_val = data.x_val is not None and data.y_val is not None
    validation = ((streams.evaluation if streams else eval_stream)(data.x_val, data.y_val,
                                                                   eval_batch_size(cfg.train.batch_size))
                  if has_val else None)
    progress = reporter.epoch_progress(end_epoch, steps, start_epoch)
    recorder = EpochRecorder(on_epoch, stop, progress)
    if steps_per_call is None:
        steps_per_call = steps_per_execution(model, cfg.train.steps_per_execution, len(data.x_train),
                                             cfg.train.batch_size)
    counter = exact_executions(model, steps, steps_per_call)
    try:
        with progress or contextlib.nullcontext():
            # Keras validates a dataset-fed fit in batches of 32 unless told; use evaluate_model's batch
            # (63 validation steps per epoch become 2 on 2,000 examples, and the numbers match evaluate's).
            model.fit(stream, epochs=end_epoch, initial_epoch=start_epoch, steps_per_epoch=steps,
                      validation_data=validation, shuffle=False, verbose=0,
                      callbacks=[*([] if counter is None else [counter]), recorder, *(callbacks or [])])
    except KeyboardInterrupt:
        recorder.interrupted = True
    return FitOutcome(recorder.interrupted, recorder.diverged_epoch)
