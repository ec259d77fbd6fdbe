"""One rule for metric directions, used by early stopping, sweep ranking and the summary; early
stopping decides exactly as Keras' own EarlyStopping callback does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import write_config

from dlrun import metrics, train
from dlrun.config.schema import EarlyStopping
from dlrun.engine.stopping import best_epoch, early_stop_due
from dlrun.store import files, names


@pytest.mark.parametrize(("metric", "goal"), [
    ("loss", "min"), ("val_loss", "min"), ("test_mae", "min"), ("best_val_loss", "min"), ("mse", "min"),
    ("sse", "min"), ("error", "min"), ("accuracy", "max"), ("val_accuracy", "max"), ("best_val_accuracy", "max"),
    ("auc", "max"), ("precision", "max"), ("recall", "max"), ("f1", "max"),
])
def test_direction_of_known_metrics(metric: str, goal: str) -> None:
    assert metrics.direction(metric) == goal


def test_unknown_metric_is_refused_with_the_known_names() -> None:
    with pytest.raises(metrics.UnknownMetric, match="known metrics.*loss, mae.*accuracy"):
        metrics.direction("val_banana")


SEQUENCES = [
    [0.50, 0.60, 0.55, 0.54, 0.70, 0.69, 0.68, 0.67],
    [0.90, 0.80, 0.70, 0.95, 0.60, 0.50],
    [0.3, 0.3, 0.3, 0.3],
    [0.1, 0.2, 0.3, 0.4, 0.5],
]


def _keras_stop_epoch(values: list[float], monitor: str, patience: int, min_delta: float) -> int | None:
    """The 0-based epoch at which keras.callbacks.EarlyStopping stops on these values (None: never)."""
    import keras

    class Model:
        stop_training = False

    mode = {"val_accuracy": "max", "val_loss": "min", "val_mae": "min"}[monitor]  # what Keras is told; dlrun infers it
    callback = keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, min_delta=min_delta, mode=mode)
    model = Model()
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {monitor: value})
        if model.stop_training:
            return epoch
    return None


def _our_stop_epoch(values: list[float], monitor: str, patience: int, min_delta: float) -> int | None:
    es = EarlyStopping(monitor=monitor, patience=patience, min_delta=min_delta)
    rows: list[dict[str, Any]] = []
    for epoch, value in enumerate(values):
        rows.append({monitor: value})
        if early_stop_due(rows, es):
            return epoch
    return None


@pytest.mark.parametrize("monitor", ["val_accuracy", "val_loss", "val_mae"])
@pytest.mark.parametrize("patience", [0, 1, 2, 3])
@pytest.mark.parametrize("min_delta", [0.0, 0.02])
def test_early_stopping_stops_where_keras_does(monitor: str, patience: int, min_delta: float) -> None:
    found = [(_our_stop_epoch(v, monitor, patience, min_delta), _keras_stop_epoch(v, monitor, patience, min_delta))
             for v in SEQUENCES]
    assert [ours for ours, _ in found] == [theirs for _, theirs in found]


def test_best_epoch_of_val_mae_is_the_lowest() -> None:
    rows = [{"val_mae": v} for v in (3.0, 1.0, 2.0, 4.0)]
    assert best_epoch(rows, EarlyStopping(monitor="val_mae")) == 2


def test_restore_best_weights_keeps_the_epoch_with_the_lowest_val_mae(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2)).astype(float)
    y = 2 * x[:, 0] + 3 * x[:, 1] + 1 + rng.normal(scale=0.3, size=80)
    table = {"columns": ["x1", "x2", "y"], "rows": np.column_stack([x, y]).round(4).tolist()}
    config = write_config(tmp_path, {
        "name": "mae", "task": "regression", "loss": "mse",
        "data": {"source": "table", "table": table, "target": "y", "test_split": 0.2, "validation": 0.25},
        "model": {"layers": [{"dense": {"units": 1}}]},
        "optimizer": {"name": "sgd", "lr": 0.3},
        "train": {"epochs": 6, "batch_size": 8, "early_stopping": {
            "monitor": "val_mae", "patience": 10, "restore_best_weights": True}},
    })
    summary = train(config, runs_root=tmp_path / "runs")
    val_mae = [float(r["val_mae"]) for r in files.read_csv(Path(summary["run_dir"]) / names.METRICS)]
    assert summary["restored_best_epoch"] == int(np.argmin(val_mae)) + 1
