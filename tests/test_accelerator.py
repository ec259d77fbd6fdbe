"""Accelerator settings (train.mixed_precision, jit_compile, steps_per_execution) work on a CPU too."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_MLP, write_config

from dlrun import train
from dlrun.config import load_config
from dlrun.engine import backend
from dlrun.engine.model import build_model
from dlrun.store import files, names

INPUT = (28, 28, 1)


def _train(tmp_path: Path, **train_settings: Any) -> dict[str, Any]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = write_config(tmp_path, TINY_MLP, train={"epochs": 2, **train_settings})
    return train(config, runs_root=tmp_path / "runs")


def _finite_losses(summary: dict[str, Any]) -> bool:
    rows = files.read_csv(Path(summary["run_dir"]) / names.METRICS)
    return len(rows) == 2 and all(math.isfinite(float(r["loss"])) for r in rows)


def test_jit_compile_defaults_to_keras_auto(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path, TINY_MLP)).config.train.jit_compile == "auto"


@pytest.mark.skipif(bool(backend.gpus()), reason="auto turns XLA on where a GPU is present")
def test_jit_compile_auto_is_off_on_cpu(tmp_path: Path) -> None:
    model = build_model(load_config(write_config(tmp_path, TINY_MLP)), INPUT)
    assert model.jit_compile is False


def test_mixed_precision_trains_on_cpu(tmp_path: Path) -> None:
    assert _finite_losses(_train(tmp_path, mixed_precision=True))


def test_mixed_precision_computes_hidden_layers_in_float16(tmp_path: Path) -> None:
    lc = load_config(write_config(tmp_path, TINY_MLP, train={"mixed_precision": True}))
    model = build_model(lc, INPUT)
    assert [layer.compute_dtype for layer in model.layers] == ["float16", "float16", "float32"]


def test_mixed_precision_scales_the_loss(tmp_path: Path) -> None:
    lc = load_config(write_config(tmp_path, TINY_MLP, train={"mixed_precision": True}))
    assert type(build_model(lc, INPUT).optimizer).__name__ == "LossScaleOptimizer"


def test_mixed_precision_does_not_leak_into_later_models(tmp_path: Path) -> None:
    build_model(load_config(write_config(tmp_path, TINY_MLP, train={"mixed_precision": True})), INPUT)
    plain = build_model(load_config(write_config(tmp_path, TINY_MLP, name="plain.yaml")), INPUT)
    assert {layer.compute_dtype for layer in plain.layers} == {"float32"}


@pytest.mark.skipif(bool(backend.gpus()), reason="an earlier GPU run in this process may have enabled determinism")
def test_jit_compile_true_is_kept(tmp_path: Path) -> None:
    model = build_model(load_config(write_config(tmp_path, TINY_MLP, train={"jit_compile": True})), INPUT)
    assert model.jit_compile is True


def test_jit_compile_true_trains_on_cpu(tmp_path: Path) -> None:
    assert _finite_losses(_train(tmp_path, jit_compile=True))


def test_steps_per_execution_trains(tmp_path: Path) -> None:
    assert _finite_losses(_train(tmp_path, steps_per_execution=4))


def test_steps_per_execution_matches_one_step_at_a_time(tmp_path: Path) -> None:
    one = _train(tmp_path / "one")
    four = _train(tmp_path / "four", steps_per_execution=4)
    assert four["metrics"]["test_accuracy"] == pytest.approx(one["metrics"]["test_accuracy"], abs=1e-6)


def test_mixed_precision_output_layer_and_predictions_are_float32(tmp_path: Path) -> None:
    import numpy as np

    model = build_model(load_config(write_config(tmp_path, TINY_MLP, train={"mixed_precision": True})), INPUT)
    out = model.layers[-1]
    predictions = model.predict(np.zeros((2, *INPUT), np.float32), verbose=0)
    assert (out.compute_dtype, out.kernel.dtype, model.outputs[0].dtype, str(predictions.dtype)) == (
        "float32", "float32", "float32", "float32")


@pytest.mark.parametrize("target_mixed", [False, True])
def test_a_base_from_another_run_follows_the_targets_precision(tmp_path: Path, target_mixed: bool) -> None:
    from dlrun.engine.base_model import build_with_base

    cnn = {"layers": [{"conv2d": {"filters": 4, "kernel_size": 3, "activation": "relu"}}, {"flatten": {}},
                      {"dense": {"units": 10, "activation": "softmax"}}]}
    config = write_config(tmp_path, TINY_MLP, name="source.yaml", model=cnn,
                          train={"epochs": 1, "mixed_precision": not target_mixed})
    source = train(config, runs_root=tmp_path / "runs")
    top = [{"flatten": {}}, {"dense": {"units": 10, "activation": "softmax"}}]
    target = write_config(tmp_path, TINY_MLP, name="target.yaml", model={"base": {"from": source["run_dir"]},
                                                                          "layers": top},
                          train={"mixed_precision": target_mixed})
    model, _ = build_with_base(load_config(target), INPUT)
    base_dtypes = {layer.compute_dtype for layer in model.layers[0].layers}
    assert (base_dtypes, model.layers[-1].compute_dtype) == ({"float16" if target_mixed else "float32"}, "float32")
