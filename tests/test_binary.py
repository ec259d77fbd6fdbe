"""Binary classification the course's way: one sigmoid unit on labels 0/1 (binary cross-entropy,
accuracy at 0.5, AUC/precision/recall recorded), two-unit softmax still working, and the refusals (sigmoid
over several units, whose outputs are no class probabilities, among them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run_cli, write_config

from dlrun import evaluate, train, validate
from dlrun.config import LoadedConfig
from dlrun.config.loader import read_config_file, validate_data
from dlrun.errors import ConfigError
from dlrun.metrics import binary_scores
from dlrun.store import files, names


def binary_table(n: int = 240, classes: int = 2) -> dict[str, Any]:
    """Two (or more) Gaussian blobs in 3 features, labels 0..classes-1."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    x = rng.normal(size=(n, 3)) + 2.0 * y[:, None]
    rows = np.column_stack([x, y]).round(4).tolist()
    return {"columns": ["a", "b", "c", "label"], "rows": rows}


def binary_config(directory: Path, units: int = 1, activation: str = "sigmoid", classes: int = 2) -> Path:
    return write_config(directory, {
        "name": "binary", "seed": 0,
        "data": {"source": "table", "target": "label", "table": binary_table(classes=classes),
                 "class_names": ["benign", "malignant", "other"][:classes]},
        "model": {"layers": [{"dense": {"units": 8, "activation": "relu"}},
                             {"dense": {"units": units, "activation": activation}}]},
        "optimizer": {"name": "adam", "lr": 0.05}, "train": {"epochs": 2, "batch_size": 32}})


@pytest.fixture(scope="module")
def sigmoid_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("binary")
    return train(binary_config(directory), runs_root=directory / "runs")


def test_one_sigmoid_unit_trains_with_binary_crossentropy(sigmoid_run: dict[str, Any]) -> None:
    metrics = sigmoid_run["metrics"]
    assert sigmoid_run["status"] == "completed"
    assert metrics["test_accuracy"] > 0.85
    assert metrics["test_auc"] > 0.9 and 0 < metrics["test_precision"] <= 1 and 0 < metrics["test_recall"] <= 1
    rows = files.read_csv(Path(sigmoid_run["run_dir"]) / names.METRICS)
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])


def test_evaluate_gives_confusion_and_per_class_for_one_unit(sigmoid_run: dict[str, Any]) -> None:
    result = evaluate(sigmoid_run["run_dir"])
    assert list(result["per_class"]) == ["benign", "malignant"]
    assert np.asarray(result["confusion_matrix"]).shape == (2, 2)
    assert result["accuracy"] == pytest.approx(sigmoid_run["metrics"]["test_accuracy"])
    assert result["auc"] == pytest.approx(sigmoid_run["metrics"]["test_auc"])
    run = Path(sigmoid_run["run_dir"])
    assert files.read_json(run / names.CLASSES)["class_names"] == ["benign", "malignant"]


def test_two_unit_softmax_still_trains(tmp_path: Path) -> None:
    summary = train(binary_config(tmp_path, units=2, activation="softmax"), runs_root=tmp_path / "runs")
    assert summary["metrics"]["test_accuracy"] > 0.85 and "test_auc" not in summary["metrics"]


def test_one_unit_on_three_classes_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="takes labels 0 and 1.*set units: 3 with activation: softmax"):
        train(binary_config(tmp_path, classes=3), runs_root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_one_softmax_unit_is_refused_by_validate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="activation: sigmoid"):
        validate(binary_config(tmp_path, activation="softmax"))


def test_several_sigmoid_units_are_refused_by_validate_with_the_fix(tmp_path: Path) -> None:
    config = binary_config(tmp_path, units=2, activation="sigmoid")
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1) if "activation: sigmoid" in text)
    proc = run_cli("validate", config)
    assert proc.returncode == 2, proc.stdout
    assert (f"{config}:{line}: model.layers.1.dense.activation: dlrun trains single-label classification"
            in proc.stderr), proc.stderr
    assert "use activation: softmax" in proc.stderr


def test_several_sigmoid_units_are_refused_by_train_without_the_static_checks(tmp_path: Path) -> None:
    config = binary_config(tmp_path, units=2, activation="sigmoid")
    data, source = read_config_file(config)
    unchecked = LoadedConfig(validate_data(data, source), source, config)  # as an API caller may build one
    with pytest.raises(ConfigError, match="single-label classification.*use activation: softmax"):
        train(unchecked, runs_root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_class_names_must_name_every_class(tmp_path: Path) -> None:
    config = write_config(tmp_path, name="bad.yaml", base={
        "name": "names", "data": {"source": "table", "target": "label", "table": binary_table(),
                                  "class_names": ["a", "b", "c"]},
        "model": {"layers": [{"dense": {"units": 1, "activation": "sigmoid"}}]}, "train": {"epochs": 1}})
    from dlrun.errors import DataError

    with pytest.raises(DataError, match="lists 3 names but .* has 2 classes"):
        train(config, runs_root=tmp_path / "runs")


def test_binary_scores_match_hand_counts() -> None:
    scores = binary_scores([0, 0, 1, 1, 1], [0.1, 0.6, 0.4, 0.8, 0.8])
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["auc"] == pytest.approx(5 / 6)  # pairs (pos > neg): 0.4>0.1, 0.8>0.1 x2, 0.8>0.6 x2


def test_class_names_are_checked_by_validate(tmp_path: Path) -> None:
    digits = write_config(tmp_path, name="digits.yaml", data={"class_names": ["zero", "one"]})
    with pytest.raises(ConfigError, match="'synthetic_digits' has 10 classes but 2 names are given"):
        validate(digits)
    regression = write_config(tmp_path, name="regression.yaml", base={
        "task": "regression", "data": {"source": "table", "target": "label", "table": binary_table(8),
                                       "class_names": ["a", "b"]},
        "model": {"layers": [{"dense": {"units": 1}}]}})
    with pytest.raises(ConfigError, match="class names need task: classification"):
        validate(regression)


def test_default_class_names_of_each_source() -> None:
    from dlrun.config.schema import DataConfig
    from dlrun.data.classes import class_names

    assert class_names(DataConfig(source="fashion_mnist"), None, 10)[::9] == ["T-shirt/top", "Ankle boot"]
    assert class_names(DataConfig(source="mnist"), None, 10)[:3] == ["0", "1", "2"]
    assert class_names(DataConfig(source="folder"), ["cat", "dog"], 2) == ["cat", "dog"]
    assert class_names(DataConfig(source="npy"), None, 3) == ["0", "1", "2"]
    assert class_names(DataConfig(source="npy", class_names=["x", "y", "z"]), None, 3) == ["x", "y", "z"]
