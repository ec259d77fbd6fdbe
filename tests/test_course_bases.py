"""Every saved model the course loads as a frozen base (issue 11): a TensorFlow SavedModel folder, a
Keras-2 full-model .h5 rebuilt from its config without running code, the Keras applications; and the
head check that refuses dense layers over 4-D features before training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from conftest import TINY_CNN, cli_env, run_cli, write_config, write_keras2_h5

from dlrun import ConfigError, WeightsError, train
from dlrun.config.applications import APPLICATIONS, IMAGENET_FILES
from dlrun.store import names
from dlrun.weights import read_weights

TOP = [{"flatten": {}}, {"dense": {"units": 10, "activation": "softmax"}}]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A SavedModel folder of a small conv feature extractor (as `model.export` writes it), and the model."""
    from dlrun.engine import backend

    keras = backend.keras()
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.MaxPooling2D(2)])
    path = tmp_path_factory.mktemp("sm") / "base_model"
    model.export(str(path), verbose=False)
    return path, model


def test_a_saved_model_folder_is_a_frozen_base(saved_model: tuple[Path, Any], tmp_path: Path) -> None:
    path, original = saved_model
    config = write_config(tmp_path, TINY_CNN, model={"base": {"from": str(path)}, "layers": TOP})
    summary = train(config, runs_root=tmp_path / "runs")
    from dlrun.engine import backend

    # a TFSMLayer inside a .keras file loads only with safe_mode off (Keras' rule for external SavedModels)
    trained = backend.keras().saving.load_model(Path(summary["run_dir"]) / names.MODEL, compile=False,
                                                safe_mode=False)
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    same = np.allclose(trained.get_layer("base")(x), original(x), atol=1e-6)
    assert (summary["status"], summary["params"]["non_trainable"], same) == ("completed", 40, True)


def test_training_a_saved_model_base_is_refused_with_the_reason(saved_model: tuple[Path, Any],
                                                                tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_CNN, model={"base": {"from": str(saved_model[0]), "trainable": True},
                                                     "layers": TOP})
    proc = run_cli("validate", config)
    assert (proc.returncode, "model.base.trainable" in proc.stderr, "fixed function" in proc.stderr) == (2, True, True)


def test_dense_over_a_4d_base_is_refused_before_training(saved_model: tuple[Path, Any], tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_CNN, model={"base": {"from": str(saved_model[0])}, "layers": TOP[1:]})
    with pytest.raises(ConfigError) as error:
        train(config, runs_root=tmp_path / "runs")
    assert ("model.layers.0" in str(error.value), "- flatten: {}" in str(error.value),
            (tmp_path / "runs").exists()) == (True, True, False)


def keras2_layer(class_name: str, name: str, **config: Any) -> dict[str, Any]:
    """A layer entry as tf-keras 2.13+ writes it (a dtype policy, Keras-2-only arguments kept)."""
    dtype = {"module": "keras.mixed_precision", "class_name": "Policy", "config": {"name": "float32"}}
    return {"class_name": class_name, "config": {"name": name, "trainable": True, "dtype": dtype, **config}}


def write_keras2_model(path: Path, extra: list[dict[str, Any]] | None = None) -> dict[str, list[np.ndarray]]:
    """A Keras-2 full-model .h5 (model_config + model_weights) of conv -> batch norm -> pool -> dense,
    written with h5py as tf-keras' model.save('x.h5') lays it out; returns its weights by layer."""
    rng = np.random.default_rng(3)
    weights = {"conv2d": [rng.normal(size=(3, 3, 1, 4)).astype("f4"), rng.normal(size=4).astype("f4")],
               "batch_normalization": [rng.random(4).astype("f4") + 0.5, rng.normal(size=4).astype("f4"),
                                       rng.normal(size=4).astype("f4"), rng.random(4).astype("f4") + 0.5],
               "dense": [rng.normal(size=(676, 10)).astype("f4"), np.zeros(10, "f4")]}
    layers = [keras2_layer("InputLayer", "conv2d_input", batch_input_shape=[None, 28, 28, 1]),
              *(extra or []),
              keras2_layer("Conv2D", "conv2d", filters=4, kernel_size=[3, 3], activation="relu",
                           kernel_initializer={"class_name": "GlorotUniform", "config": {"seed": None}}),
              keras2_layer("BatchNormalization", "batch_normalization", axis=[3], momentum=0.99, epsilon=0.001,
                           renorm=False, fused=None, virtual_batch_size=None, adjustment=None),
              keras2_layer("MaxPooling2D", "max_pooling2d", pool_size=[2, 2]),
              keras2_layer("Flatten", "flatten"), keras2_layer("Dense", "dense", units=10, activation="softmax")]
    write_keras2_h5(path, [(n, weights.get(n, [])) for n in ("conv2d", "batch_normalization", "max_pooling2d",
                                                             "flatten", "dense")], full_model=True)
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}
    with h5py.File(path, "a") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
    return weights


def test_a_keras2_full_model_h5_is_rebuilt_from_its_config_as_a_frozen_base(tmp_path: Path) -> None:
    weights = write_keras2_model(tmp_path / "cnn_ImgNet.h5")
    config = write_config(tmp_path, TINY_CNN, model={"base": {"from": str(tmp_path / "cnn_ImgNet.h5")},
                                                     "layers": TOP})
    summary = train(config, runs_root=tmp_path / "runs")
    saved = {layer.name: layer.arrays for layer in read_weights(summary["run_dir"]).layers}
    kept = [np.array_equal(a, b) for name in ("conv2d", "batch_normalization")
            for a, b in zip(weights[name], saved[name], strict=True)]
    assert (summary["status"], kept) == ("completed", [True] * 6)


def test_a_lambda_layer_in_a_keras2_h5_is_refused_without_running_it(tmp_path: Path) -> None:
    code = {"function": ["4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMIAAAAfABkARQAUwApAk7pAgAAAKkAKQHaAXhyAgAAAHIC", None,
                         None], "function_type": "lambda"}
    write_keras2_model(tmp_path / "lambda.h5", [keras2_layer("Lambda", "lambda", **code)])
    config = write_config(tmp_path, TINY_CNN, model={"base": {"from": str(tmp_path / "lambda.h5")}, "layers": TOP})
    with pytest.raises(WeightsError, match="'lambda' is a Lambda layer, whose code would run on loading"):
        train(config, runs_root=tmp_path / "runs")


def test_every_application_is_a_keras_application_with_its_imagenet_file() -> None:
    from dlrun.engine import backend

    keras = backend.keras()
    assert [(hasattr(keras.applications, cls), name in IMAGENET_FILES) for name, cls in APPLICATIONS.items()] == \
        [(True, True)] * len(APPLICATIONS)


def test_imagenet_weights_are_accepted_once_in_the_keras_cache(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_CNN, data={"image_size": [32, 32], "color": "rgb"},
                          model={"base": {"application": "resnet50", "weights": "imagenet"},
                                 "layers": [{"global_avg_pool2d": {}}, TOP[1]]})
    home = tmp_path / "keras"
    missing = run_cli("validate", config, env=cli_env(KERAS_HOME=str(home)))
    (home / "models").mkdir(parents=True)
    (home / "models" / IMAGENET_FILES["resnet50"]).write_bytes(b"")
    present = run_cli("validate", config, env=cli_env(KERAS_HOME=str(home)))
    assert (missing.returncode, IMAGENET_FILES["resnet50"] in missing.stderr, present.returncode) == (2, True, 0)
