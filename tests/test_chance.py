"""Chance is the majority-class rate of the split a metric is measured on: the data records its class
counts per split in the run's summary, and a sweep labels "no learning" against them (binary, imbalanced,
many classes alike)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import write_config

from dlrun import train
from dlrun.config.schema import DataConfig
from dlrun.data import load_dataset
from dlrun.metrics import chance_accuracy, measured_on
from dlrun.sweeps.report import trial_note

FALLING = [{"loss": "0.69"}, {"loss": "0.50"}]  # a loss that fell: neither exploding nor stalled


def table(n: int, majority: float) -> dict[str, Any]:
    """A 3-feature table whose labels are 0 for `majority` of the rows, else 1."""
    rng = np.random.default_rng(0)
    y = (np.arange(n) >= round(majority * n)).astype(int)
    x = rng.normal(size=(n, 3)) + y[:, None]
    return {"columns": ["a", "b", "c", "label"], "rows": np.column_stack([x, y]).round(4).tolist()}


def table_data(majority: float) -> dict[str, Any]:
    return {"source": "table", "target": "label", "table": table(1000, majority)}


def summary_of(data: dict[str, Any], task: str = "classification") -> dict[str, Any]:
    """The data fields a run's summary records for this data."""
    return load_dataset(DataConfig.model_validate(data), task, use_cache=False).summary_fields()


def note_at(accuracy: float, data_fields: dict[str, Any]) -> str:
    return trial_note("completed", {**data_fields, "metrics": {"accuracy": accuracy}}, FALLING)


@pytest.fixture(scope="module")
def imbalanced_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A binary run on data whose labels are 74% class 0."""
    directory = tmp_path_factory.mktemp("imbalanced")
    config = write_config(directory, {
        "name": "imbalanced", "seed": 0, "data": table_data(0.74),
        "model": {"layers": [{"dense": {"units": 4, "activation": "relu"}},
                             {"dense": {"units": 1, "activation": "sigmoid"}}]},
        "optimizer": {"name": "adam", "lr": 0.01}, "train": {"epochs": 1, "batch_size": 64}})
    return train(config, runs_root=directory / "runs")


def test_a_run_records_the_class_counts_of_every_split(imbalanced_run: dict[str, Any]) -> None:
    data = load_dataset(DataConfig.model_validate(table_data(0.74)), use_cache=False)
    expected = {split: np.bincount(y, minlength=2).tolist()
                for split, y in (("train", data.y_train), ("validation", data.y_val), ("test", data.y_test))}
    assert imbalanced_run["class_counts"] == expected


def test_chance_is_the_majority_rate_of_the_measured_split() -> None:
    counts = {"train": [74, 26], "validation": [9, 1], "test": [50, 50]}
    assert [chance_accuracy(m, counts) for m in ("accuracy", "val_accuracy", "best_val_accuracy", "test_accuracy")] \
        == [0.74, 0.9, 0.9, 0.5]
    assert [measured_on(m) for m in ("loss", "val_loss", "test_accuracy", "train_accuracy")] == \
        ["train", "validation", "test", "train"]


def test_an_imbalanced_binary_trial_at_the_majority_rate_learned_nothing(imbalanced_run: dict[str, Any]) -> None:
    counts = imbalanced_run["class_counts"]["train"]
    assert (f"{max(counts) / sum(counts):.3f}", note_at(0.74, imbalanced_run), note_at(0.85, imbalanced_run)) == \
        ("0.740", "no learning: accuracy 0.740 (chance = majority rate 0.740)", "")


def test_a_balanced_binary_trial_at_74_percent_learned() -> None:
    assert note_at(0.74, summary_of(table_data(0.5))) == ""


def test_balanced_ten_classes_keep_their_chance() -> None:
    fields = summary_of({"source": "synthetic_digits", "n_train": 200, "n_test": 100})
    assert (note_at(0.095, fields), note_at(0.6, fields)) == \
        ("no learning: accuracy 0.095 (chance = majority rate 0.100)", "")


def test_regression_has_no_chance_accuracy() -> None:
    data = {"source": "table", "target": "y", "table": {"columns": ["x", "y"],
                                                        "rows": [[i, 2.0 * i] for i in range(40)]}}
    fields = summary_of(data, "regression")
    assert ("class_counts" in fields, note_at(0.1, fields)) == (False, "")
