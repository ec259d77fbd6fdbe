"""The end of a run: the test split is not evaluated twice, and the fast exit loses nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY_MLP, run_cli, write_config

from dlrun import evaluate, train
from dlrun.store import files, names


def _last_row(summary: dict) -> dict[str, str]:
    return files.read_csv(Path(summary["run_dir"]) / names.METRICS)[-1]


def test_validation_on_test_split_is_reused_as_test_metrics(tmp_path: Path) -> None:
    summary = train(write_config(tmp_path, TINY_MLP, data={"validation": "test"}), runs_root=tmp_path / "runs")
    last = _last_row(summary)
    assert (summary["metrics"]["test_loss"], summary["metrics"]["test_accuracy"]) == (
        float(last["val_loss"]), float(last["val_accuracy"]))


def test_reused_test_metrics_equal_a_fresh_evaluation(tmp_path: Path) -> None:
    summary = train(write_config(tmp_path, TINY_MLP, data={"validation": "test"}), runs_root=tmp_path / "runs")
    result = evaluate(summary["run_dir"], out=tmp_path / "eval")
    metrics = summary["metrics"]
    assert (result["loss"], result["accuracy"]) == (metrics["test_loss"], metrics["test_accuracy"])


def test_separate_validation_split_is_evaluated_on_test(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, data={"validation": 0.25})
    summary = train(config, runs_root=tmp_path / "runs")
    result = evaluate(summary["run_dir"], out=tmp_path / "eval")
    assert result["accuracy"] == pytest.approx(summary["metrics"]["test_accuracy"], abs=1e-6)


# The CLI skips TensorFlow's slow interpreter teardown once training is done: nothing may be lost.

def test_error_after_tensorflow_loaded_still_exits_2_with_its_message(tmp_path: Path) -> None:
    summary = train(write_config(tmp_path, TINY_MLP), runs_root=tmp_path / "runs")
    proc = run_cli("evaluate", summary["run_dir"], "--set", "model.layers.1.dense.units=32")
    assert (proc.returncode, "error:" in proc.stderr) == (2, True)


def test_train_output_is_complete_after_a_fast_exit(tmp_path: Path) -> None:
    proc = run_cli("train", write_config(tmp_path, TINY_MLP), "--runs", tmp_path / "runs")
    assert (proc.returncode, "completed" in proc.stdout) == (0, True)
