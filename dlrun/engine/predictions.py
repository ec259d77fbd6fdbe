"""What a model says about prepared inputs: class probabilities (N x classes, also for a one-unit
sigmoid or logit output), regression values, and the binary scores a run records."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlrun.config.outputs import from_logits, is_binary_output
from dlrun.config.schema import ExperimentConfig
from dlrun.data import Dataset
from dlrun.engine.pipeline import eval_batch_size, eval_stream
from dlrun.metrics import binary_scores, final_prefix


def raw_outputs(model: Any, x: np.ndarray, cfg: ExperimentConfig) -> np.ndarray:
    """The model's outputs for `x`, in the batches evaluation uses (so the numbers are evaluation's)."""
    return np.asarray(model.predict(eval_stream(x, None, eval_batch_size(cfg.train.batch_size)), verbose=0))


def to_probabilities(outputs: np.ndarray, cfg: ExperimentConfig) -> np.ndarray:
    """N x classes probabilities from a classifier's outputs: a one-unit output becomes
    [P(0), P(1)]; logits (no output activation) go through sigmoid / softmax."""
    out = np.asarray(outputs, np.float64)
    logits = from_logits(cfg)
    if is_binary_output(cfg):
        p = out.reshape(-1)
        p = 1.0 / (1.0 + np.exp(-p)) if logits else p
        return np.stack([1.0 - p, p], axis=1)
    if logits:
        shifted = np.exp(out - out.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return out


def class_probabilities(model: Any, x: np.ndarray, cfg: ExperimentConfig) -> np.ndarray:
    """N x classes probabilities of a classifier for prepared inputs `x`."""
    return to_probabilities(raw_outputs(model, x, cfg), cfg)


def binary_final(model: Any, data: Dataset, cfg: ExperimentConfig) -> dict[str, float]:
    """A one-unit binary run's final AUC, precision and recall (test split, else training data), named
    as the other final metrics (`test_auc`, ...); nothing for other runs."""
    if not is_binary_output(cfg):
        return {}
    x, y = data.eval_split()
    scores = binary_scores(y, class_probabilities(model, x, cfg)[:, 1])
    return {final_prefix(data.has_test) + name: value for name, value in scores.items()}


PREDICT_BATCH, PREDICT_REPEATS = 32, 5  # predict_ms: one batch of 32, the median of 5 timed calls


def predict_ms(model: Any, x: np.ndarray) -> float | None:
    """Milliseconds the model takes to predict one batch of PREDICT_BATCH inputs (the first rows of `x`,
    repeated when there are fewer): one untimed call (to warm up), then the median of PREDICT_REPEATS
    timed calls of the model on the batch (eager, training=False), the same way for every run. None
    without inputs."""
    import time

    if x is None or not len(x):
        return None
    batch = np.resize(np.asarray(x[:PREDICT_BATCH]), (PREDICT_BATCH, *x.shape[1:]))
    np.asarray(model(batch, training=False))
    times = []
    for _ in range(PREDICT_REPEATS):
        start = time.perf_counter()
        np.asarray(model(batch, training=False))  # to numpy: the call has finished
        times.append(time.perf_counter() - start)
    return round(float(np.median(times)) * 1000, 3)
