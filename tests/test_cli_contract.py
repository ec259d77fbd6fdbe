"""The CLI contract: exit codes, stdout JSON, files written, no TensorFlow where none is needed."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import modules_loaded, run_cli, tf_loaded, write_config


def test_help_does_not_import_tensorflow() -> None:
    assert tf_loaded("--help") == "TF_LOADED=False"


def test_train_help_does_not_import_tensorflow() -> None:
    assert tf_loaded("train", "--help") == "TF_LOADED=False"


def test_validate_does_not_import_tensorflow(tiny_config: Path) -> None:
    assert tf_loaded("validate", str(tiny_config)) == "TF_LOADED=False"


def test_help_and_validate_load_no_optional_library(tmp_path: Path) -> None:
    # a config that tracks in MLflow and sweeps with Optuna: validating it loads neither (nor TF, nor Ray)
    config = write_config(tmp_path, tracking={"mlflow": {"uri": "http://127.0.0.1:5000", "experiment": "e"}},
                          sweep={"search": "tpe", "trials": 2, "params": {"optimizer.lr": {"log_uniform": [1e-4, 1]}}})
    loaded = [modules_loaded(*args) for args in (["--help"], ["train", "--help"], ["validate", str(config)])]
    assert loaded == [set(), set(), set()]


def test_validate_ok_exits_zero(tiny_config: Path) -> None:
    assert run_cli("validate", tiny_config).returncode == 0


def test_validate_json_is_the_only_stdout(tiny_config: Path) -> None:
    proc = run_cli("validate", tiny_config, "--json")
    assert json.loads(proc.stdout)["valid"] is True


def test_train_json_stdout_is_one_object_with_run_dir(tiny_config: Path, tmp_path: Path) -> None:
    proc = run_cli("train", tiny_config, "--json", "--runs", tmp_path / "runs")
    summary = json.loads(proc.stdout)
    assert Path(summary["run_dir"]).is_dir() and summary["status"] == "completed"


def test_train_writes_every_artifact(tiny_config: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "the-run"
    run_cli("train", tiny_config, "--run-dir", run_dir, "--json")
    expected = {"config.yaml", "metrics.csv", "summary.json", "model.keras", "weights.weights.h5",
                "history.png", "model.txt"}
    assert expected <= {p.name for p in run_dir.iterdir()}


def test_early_interrupt_code_is_the_documented_one() -> None:
    from dlrun.__main__ import INTERRUPTED
    from dlrun.errors import Interrupted

    assert Interrupted.exit_code == INTERRUPTED
