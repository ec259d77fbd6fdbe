"""No double work at the end of training: the test split is not evaluated twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY_MLP, write_config

from dlrun import rundir
from dlrun.evaluate import evaluate
from dlrun.train import train


def _last_row(summary: dict) -> dict[str, str]:
    return rundir.read_csv(Path(summary["run_dir"]) / rundir.METRICS)[-1]


def test_validation_on_test_split_is_reused_as_test_metrics(tmp_path: Path) -> None:
    summary = train(write_config(tmp_path, TINY_MLP), runs_root=tmp_path / "runs")
    last = _last_row(summary)
    assert (summary["metrics"]["test_loss"], summary["metrics"]["test_accuracy"]) == (
        float(last["val_loss"]), float(last["val_accuracy"]))


def test_reused_test_accuracy_matches_a_fresh_evaluation(tmp_path: Path) -> None:
    summary = train(write_config(tmp_path, TINY_MLP), runs_root=tmp_path / "runs")
    result = evaluate(summary["run_dir"], out=tmp_path / "eval")
    assert result["accuracy"] == pytest.approx(summary["metrics"]["test_accuracy"], abs=1e-6)


def test_separate_validation_split_is_evaluated_on_test(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, data={"validation": 0.25})
    summary = train(config, runs_root=tmp_path / "runs")
    result = evaluate(summary["run_dir"], out=tmp_path / "eval")
    assert result["accuracy"] == pytest.approx(summary["metrics"]["test_accuracy"], abs=1e-6)
