"""The end of a run: the test split is not evaluated twice, and the fast exit loses nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_MLP, cli_env, run_cli, write_config

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


# dlrun's own processes import Keras without the integrations it imports for features dlrun never calls
# (backend.KERAS_EXTRAS: ~1.5 s of each process' start-up); a program that imports dlrun keeps Keras whole.

def _extras_probe(own: bool) -> dict[str, object]:
    script = ("import json, sys\nfrom dlrun.engine import backend\n"
              + ("backend.own_process()\n" if own else "")
              + "backend.keras()\n"
              "from keras.src.wrappers import fixes\n"
              "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'pandas', 'matplotlib'})\n"
              "keras_has_sklearn = fixes.sklearn is not None\n"
              "import sklearn, pandas, matplotlib.pyplot  # each still imports afterwards\n"
              "print(json.dumps({'loaded': loaded, 'keras_has_sklearn': keras_has_sklearn}))\n")
    proc = subprocess.run([sys.executable, "-c", script], env=cli_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_own_process_imports_keras_without_sklearn_pandas_or_matplotlib() -> None:
    assert _extras_probe(own=True) == {"loaded": [], "keras_has_sklearn": False}


def test_a_program_importing_dlrun_keeps_keras_sklearn_wrappers() -> None:
    assert _extras_probe(own=False)["keras_has_sklearn"] is True


def test_cli_train_never_imports_sklearn_or_pandas_and_still_plots(tmp_path: Path) -> None:
    command = ["train", str(write_config(tmp_path, TINY_MLP)), "--runs", str(tmp_path / "runs"), "--json"]
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "dlrun", *command],
                          env=cli_env(DLRUN_TF_LOG="stderr"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert [m for m in imported if m.startswith(("sklearn.", "pandas."))] == []
    assert (Path(json.loads(proc.stdout)["run_dir"]) / names.HISTORY_PLOT).is_file()
