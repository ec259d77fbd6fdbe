"""`loss: sse`, the course's sum of squared errors, reported over a whole split.

Keras logs a loss as the mean of its per-batch values (weighted by batch size). That is right for a
mean loss (mse, cross-entropy: the same number for any batch size), but for a per-batch *sum* it
depends on the batch size, and training, validation and evaluation use different batches. So the
gradient still follows the per-batch sum (as the course's table fit does, with the whole table as one
batch), while the number reported as `loss`, `val_loss` and `test_loss` is `SumSquaredError`, a
metric that adds up the squared errors of every example of the split, plus the L2 penalty once, as
Keras adds it to every loss. Imported only on paths that build or train models (loads Keras).
"""

from __future__ import annotations

from typing import Any

from dlrun.engine import backend

keras = backend.keras()
SSE = "sse"  # the metric's name in Keras' logs; folded into `loss` before anything records it


@keras.saving.register_keras_serializable(package="dlrun")
class SumSquaredError(keras.metrics.Sum):
    """The sum over every example seen since the last reset of (y_true - y_pred)^2."""

    def __init__(self, name: str = SSE, dtype: Any = None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        ops = keras.ops
        y_pred = ops.cast(y_pred, self.dtype)
        y_true = ops.reshape(ops.cast(y_true, self.dtype), ops.shape(y_pred))
        errors = ops.sum(ops.reshape(ops.square(y_true - y_pred), (ops.shape(y_pred)[0], -1)), axis=-1)
        return super().update_state(errors, sample_weight=sample_weight)


def penalty(model: Any) -> float:
    """The model's regularisation losses (the L2 penalty) at its current weights."""
    return float(sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)) if model.losses else 0.0


def fold(logs: dict[str, Any], model_penalty: float) -> dict[str, Any]:
    """Keras logs with `sse` (and `val_sse`) reported as `loss` (and `val_loss`): the whole split's sum
    of squared errors plus the penalty. Logs without them are returned as they are."""
    if SSE not in logs and f"val_{SSE}" not in logs:
        return logs
    out = {k: v for k, v in logs.items() if k not in (SSE, f"val_{SSE}")}
    for prefix in ("", "val_"):
        if prefix + SSE in logs:
            out[prefix + "loss"] = float(logs[prefix + SSE]) + model_penalty
    return out
