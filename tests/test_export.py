"""`dlrun export`: each format loaded by the consumer it is for gives the run's predictions; existing
paths are never overwritten."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from conftest import TINY_MLP, run_cli, write_config

from dlrun import DlrunError, export, train
from dlrun.commands.saved import build_saved_model, open_target
from dlrun.data import load_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny trained MLP, a few of its test inputs and what the run's model says about them."""
    directory = tmp_path_factory.mktemp("export")
    config = write_config(directory, TINY_MLP, train={"epochs": 1})
    run_dir = Path(train(config, runs_root=directory / "runs", use_cache=False)["run_dir"])
    saved = open_target(run_dir)
    x = load_dataset(saved.lc.config.data, use_cache=False).x_test[:5]
    x = x.astype(np.float32) / np.float32(255.0)  # what the model sees: pixels are kept as bytes, scaled per batch
    return {"dir": run_dir, "x": x, "expected": np.asarray(build_saved_model(saved)(x))}


def test_keras_file_loads_in_keras3(run: dict[str, Any], tmp_path: Path) -> None:
    import keras

    result = export(run["dir"], "keras", tmp_path / "model.keras")
    model = keras.saving.load_model(result["path"])
    np.testing.assert_allclose(np.asarray(model(run["x"])), run["expected"], rtol=1e-6)


def test_h5_has_the_keras2_layout_and_loads(run: dict[str, Any], tmp_path: Path) -> None:
    import keras

    path = Path(export(run["dir"], "h5", tmp_path / "model.h5")["path"])
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        assert config["class_name"] == "Sequential" and "model_weights" in f
        assert set(f["model_weights"].attrs["layer_names"].astype(str)) >= {"dense", "dense_1"}
    model = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(model(run["x"])), run["expected"], rtol=1e-6)


def test_h5_loads_in_tf_keras(run: dict[str, Any], tmp_path: Path) -> None:
    tf_keras = pytest.importorskip("tf_keras")  # a dev dependency: Keras 2, the consumer of a legacy .h5

    path = export(run["dir"], "h5", tmp_path / "model.h5")["path"]
    model = tf_keras.models.load_model(path)
    np.testing.assert_allclose(model.predict(run["x"], verbose=0), run["expected"], rtol=1e-5, atol=1e-7)


def test_savedmodel_serves_the_same_predictions(run: dict[str, Any], tmp_path: Path) -> None:
    import tensorflow as tf

    path = export(run["dir"], "savedmodel", tmp_path / "served")["path"]
    serve = tf.saved_model.load(path).signatures["serve"]
    (output,) = serve(tf.constant(run["x"])).values()
    np.testing.assert_allclose(output.numpy(), run["expected"], rtol=1e-6)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_default_path_is_in_the_run_and_never_overwritten(run: dict[str, Any]) -> None:
    first = export(run["dir"], "keras")
    assert first["path"] == str(run["dir"] / "export.keras")
    before = Path(first["path"]).read_bytes()
    with pytest.raises(DlrunError, match="exists; dlrun never overwrites"):
        export(run["dir"], "keras")
    assert Path(first["path"]).read_bytes() == before


def test_cli_export_json_and_refusals(run: dict[str, Any], tmp_path: Path) -> None:
    proc = run_cli("export", run["dir"], "--format", "h5", "--out", tmp_path / "m.h5", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["path"] == str(tmp_path / "m.h5")
    again = run_cli("export", run["dir"], "--format", "h5", "--out", tmp_path / "m.h5")
    assert again.returncode == 2 and "never overwrites" in again.stderr
    wrong = run_cli("export", run["dir"], "--format", "keras", "--out", tmp_path / "m.h5x")
    assert wrong.returncode == 2 and "ending in .keras" in wrong.stderr


def test_a_functional_base_is_written_in_keras2_form(tmp_path: Path) -> None:
    """An application base is a functional model: its layers' calls are rewritten for Keras 2 too."""
    import keras
    tf_keras = pytest.importorskip("tf_keras")

    from dlrun.engine.exporting import write_model

    inputs = keras.Input((8, 8, 1))
    features = keras.layers.BatchNormalization()(keras.layers.Conv2D(2, 3, name="Conv1")(inputs))
    base = keras.Model(inputs, keras.layers.Add()([features, features]), name="base")
    model = keras.Sequential([keras.Input((8, 8, 1)), base, keras.layers.Flatten(), keras.layers.Dense(3)])
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    write_model(model, "h5", tmp_path / "functional.h5")
    loaded = tf_keras.models.load_model(tmp_path / "functional.h5")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


def test_a_run_on_a_base_with_batch_norm_exports_and_evaluates(tmp_path: Path) -> None:
    """The weights of a model over a base are read in the model's order (batch_norm inside the base
    used to be read before the convolution it follows)."""
    from dlrun import evaluate

    source = write_config(tmp_path, name="source.yaml", model={"layers": [
        {"conv2d": {"filters": 2, "kernel_size": 3}}, {"batch_norm": {}}, {"flatten": {}},
        {"dense": {"units": 10, "activation": "softmax"}}]}, train={"epochs": 1})
    source_run = train(source, runs_root=tmp_path / "runs")["run_dir"]
    target = write_config(tmp_path, name="target.yaml", model={"base": {"from": source_run}, "layers": [
        {"flatten": {}}, {"dense": {"units": 10, "activation": "softmax"}}]}, train={"epochs": 1})
    summary = train(target, runs_root=tmp_path / "runs")
    assert evaluate(summary["run_dir"])["accuracy"] == pytest.approx(summary["metrics"]["test_accuracy"])
    path = export(summary["run_dir"], "keras")["path"]
    assert Path(path).is_file()
