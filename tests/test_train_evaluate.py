"""Training and evaluation end to end on tiny built-in data (in-process: TensorFlow loads once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TINY_CNN, TINY_MLP, run_cli, write_config, write_keras2_h5

from dlrun import evaluate, train
from dlrun.errors import ConfigError, RunDirError, WeightsError
from dlrun.metrics import epoch_columns
from dlrun.store import files, names


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One tiny CNN run shared by the evaluation tests."""
    directory = tmp_path_factory.mktemp("trained")
    config = write_config(directory)
    return train(config, runs_root=directory / "runs")


def _metric_rows(run_dir: str) -> list[list[str]]:
    return [[v for k, v in row.items() if k != "seconds"] for row in files.read_csv(Path(run_dir) / names.METRICS)]


def test_summary_records_the_run(trained: dict[str, Any]) -> None:
    keys = {"status", "run_dir", "name", "seed", "epochs_run", "metrics", "seconds", "params", "versions",
            "config_sha256"}
    assert keys <= set(trained) and trained["status"] == "completed"


def test_metrics_csv_has_one_row_per_epoch(trained: dict[str, Any]) -> None:
    rows = files.read_csv(Path(trained["run_dir"]) / names.METRICS)
    assert [list(rows[0]), len(rows)] == [epoch_columns("classification"), 2]


def test_same_seed_gives_identical_metrics(trained: dict[str, Any], tmp_path: Path) -> None:
    again = train(Path(trained["run_dir"]) / names.CONFIG, runs_root=tmp_path)
    assert _metric_rows(again["run_dir"]) == _metric_rows(trained["run_dir"])


def test_evaluate_run_dir_reproduces_test_accuracy(trained: dict[str, Any]) -> None:
    result = evaluate(trained["run_dir"])
    assert result["accuracy"] == pytest.approx(trained["metrics"]["test_accuracy"], abs=1e-6)


def test_evaluate_writes_eval_json_and_confusion(trained: dict[str, Any]) -> None:
    evaluate(trained["run_dir"])
    run = Path(trained["run_dir"])
    assert (run / names.EVAL).is_file() and (run / names.CONFUSION_PLOT).is_file()


def test_evaluate_reports_per_class_and_confusion(trained: dict[str, Any]) -> None:
    result = evaluate(trained["run_dir"])
    assert len(result["per_class"]) == 10 and sum(map(sum, result["confusion_matrix"])) == 100


def test_evaluate_keras_archive(trained: dict[str, Any], tmp_path: Path) -> None:
    run = Path(trained["run_dir"])
    result = evaluate(run / names.MODEL, config=run / names.CONFIG, out=tmp_path)
    assert result["accuracy"] == pytest.approx(trained["metrics"]["test_accuracy"], abs=1e-6)


def test_weights_file_loads_in_plain_keras(trained: dict[str, Any]) -> None:
    """weights.weights.h5 (copied out of model.keras) is what Keras' own save_weights writes: a model
    rebuilt from the archive's config takes it with load_weights, value for value."""
    import keras

    run = Path(trained["run_dir"])
    saved = keras.saving.load_model(run / names.MODEL, compile=False)
    fresh = keras.models.clone_model(saved)  # same architecture, freshly initialised weights
    fresh.load_weights(run / names.WEIGHTS)
    assert len(saved.weights) > 0
    for a, b in zip(saved.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("full_model", [False, True], ids=["weights-only", "full-model"])
def test_evaluate_legacy_keras2_h5(trained: dict[str, Any], tmp_path: Path, full_model: bool) -> None:
    from dlrun.weights import read_weights

    run = Path(trained["run_dir"])
    layers = [(layer.name, layer.arrays) for layer in read_weights(run).layers]
    legacy = tmp_path / "my_digit_model.h5"
    write_keras2_h5(legacy, layers, full_model)
    result = evaluate(legacy, config=run / names.CONFIG, out=tmp_path / "eval")
    assert result["accuracy"] == pytest.approx(trained["metrics"]["test_accuracy"], abs=1e-6)


def test_evaluate_bare_weights_needs_out(trained: dict[str, Any]) -> None:
    run = Path(trained["run_dir"])
    with pytest.raises(RunDirError, match="--out"):
        evaluate(run / names.WEIGHTS, config=run / names.CONFIG)


def test_weights_from_another_architecture_are_refused(trained: dict[str, Any], tmp_path: Path) -> None:
    other = write_config(tmp_path, TINY_MLP)
    with pytest.raises(WeightsError, match="different architecture"):
        evaluate(Path(trained["run_dir"]) / names.WEIGHTS, config=other, out=tmp_path / "eval")


def test_truncated_weights_file_is_one_clear_error(trained: dict[str, Any], tmp_path: Path) -> None:
    broken = tmp_path / "broken.weights.h5"
    broken.write_bytes((Path(trained["run_dir"]) / names.WEIGHTS).read_bytes()[:300])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        evaluate(broken, config=Path(trained["run_dir"]) / names.CONFIG, out=tmp_path)


def test_run_dir_is_never_overwritten(trained: dict[str, Any]) -> None:
    with pytest.raises(RunDirError, match="never overwritten"):
        train(Path(trained["run_dir"]) / names.CONFIG, run_dir=trained["run_dir"])


def test_class_count_mismatch_found_before_anything_is_written(tmp_path: Path) -> None:
    np.save(tmp_path / "X.npy", np.random.default_rng(0).random((20, 8, 8)))
    np.save(tmp_path / "Y.npy", np.arange(20) % 4)
    config = write_config(tmp_path, TINY_MLP, data={"source": "npy", "path": str(tmp_path)})
    with pytest.raises(ConfigError, match="'npy' has 4 classes"):
        train(config, runs_root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_huge_learning_rate_diverges_as_a_result(tmp_path: Path) -> None:
    # lr = lambda = 50, the course's exploding corner: the L2 penalty overflows to inf in epoch 1
    config = write_config(tmp_path, TINY_MLP, model={"l2": 50.0}, optimizer={"name": "sgd", "lr": 50.0},
                          train={"epochs": 3})
    summary = train(config, runs_root=tmp_path)
    assert (summary["status"], summary["diverged_epoch"]) == ("diverged", 1)


def test_regression_table_fits_the_coefficients(tmp_path: Path) -> None:
    points = [(1, 1), (2, 1), (1, 2), (3, 2), (2, 3), (4, 1), (3, 4), (5, 5)]
    rows = [[x1, x2, 2 * x1 + 3 * x2 + 1] for x1, x2 in points]
    table = {"columns": ["x1", "x2", "y"], "rows": rows}
    config = write_config(tmp_path, {
        "name": "table", "task": "regression", "loss": "sse",
        "data": {"source": "table", "target": "y", "test_split": 0, "table": table},
        "model": {"layers": [{"dense": {"units": 1}}]},
        "optimizer": {"name": "adam", "lr": 0.1}, "train": {"epochs": 400, "batch_size": 8}})
    summary = train(config, runs_root=tmp_path)
    assert summary["coefficients"]["weights"] == pytest.approx([2.0, 3.0], abs=0.3)


def test_cnn_learns_clean_digits_and_street_is_harder(tmp_path: Path) -> None:
    accuracies = {}
    for style in ("clean", "street"):
        config = write_config(tmp_path, TINY_CNN, name=f"{style}.yaml", data={
            "style": style, "n_train": 1000, "n_test": 300}, train={"epochs": 3})
        accuracies[style] = train(config, runs_root=tmp_path)["metrics"]["test_accuracy"]
    assert accuracies["clean"] > 0.6 and accuracies["street"] < accuracies["clean"] - 0.15


def test_cli_diverged_exit_code_is_3(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, model={"l2": 50.0}, optimizer={"name": "sgd", "lr": 50.0})
    assert run_cli("train", config, "--runs", tmp_path / "runs").returncode == 3


def test_cli_evaluate_json(trained: dict[str, Any]) -> None:
    import json

    proc = run_cli("evaluate", trained["run_dir"], "--json")
    assert set(json.loads(proc.stdout)) >= {"loss", "accuracy", "per_class", "confusion_matrix"}


def test_early_stopping_stops_and_restores_best(tmp_path: Path) -> None:
    es = {"monitor": "val_loss", "patience": 1, "min_delta": 10.0, "restore_best_weights": True}
    config = write_config(tmp_path, TINY_MLP, train={"epochs": 6, "early_stopping": es})
    summary = train(config, runs_root=tmp_path)
    assert (summary["epochs_run"], summary["restored_best_epoch"]) == (2, 1)


def test_early_stop_rule_counts_epochs_without_improvement() -> None:
    from dlrun.config.schema import EarlyStopping
    from dlrun.engine.stopping import early_stop_due

    rows = [{"val_accuracy": v} for v in (0.5, 0.7, 0.705, 0.708)]
    assert early_stop_due(rows, EarlyStopping(patience=2, min_delta=0.01))


# --- honest numbers: where each number was measured, and numbers that do not depend on the batch size

def test_summary_records_train_validation_and_test_sizes(trained: dict[str, Any]) -> None:
    sizes = {name: split["examples"] for name, split in trained["splits"].items()}
    assert (sizes, trained["validation"]) == ({"train": 180, "validation": 20, "test": 100}, "held out from training")


def test_validation_on_the_test_split_is_announced_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dlrun.ui.console import Reporter

    config = write_config(tmp_path, TINY_MLP, data={"validation": "test"}, train={"epochs": 1})
    summary = train(config, runs_root=tmp_path / "runs", reporter=Reporter(live=False))
    err = capsys.readouterr().err
    assert (summary["validation"], err.count("validating on the test split")) == ("test split", 1)


@pytest.fixture(scope="module")
def table_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The course's table fit, no held-out data at all (test_split 0, validation 0)."""
    directory = tmp_path_factory.mktemp("table")
    rows = [[x1, x2, 2 * x1 + 3 * x2 + 1] for x1, x2 in [(1, 1), (2, 1), (1, 2), (3, 2), (2, 3), (4, 1)]]
    config = write_config(directory, {
        "name": "table", "task": "regression", "loss": "sse",
        "data": {"source": "table", "target": "y", "test_split": 0, "validation": 0,
                 "table": {"columns": ["x1", "x2", "y"], "rows": rows}},
        "model": {"layers": [{"dense": {"units": 1}}]}, "train": {"epochs": 3, "batch_size": 6}})
    return train(config, runs_root=directory / "runs")


def test_without_a_test_split_final_metrics_are_training_metrics(table_run: dict[str, Any]) -> None:
    assert sorted(table_run["metrics"]) == ["loss", "mae", "train_loss", "train_mae"]


def test_dlrun_runs_shows_training_metrics_without_a_test_split(table_run: dict[str, Any]) -> None:
    from dlrun import list_runs

    info = list_runs(Path(table_run["run_dir"]).parent)[0]
    assert [k for k in info.metrics if k.startswith(("test_", "train_"))] == ["train_loss", "train_mae"]


def test_sse_is_over_the_whole_split_for_any_batch_size(tmp_path: Path) -> None:
    from dlrun.config import load_config
    from dlrun.data import load_checked
    from dlrun.engine.fit import evaluate_model, seeded_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 2))
    np.savetxt(tmp_path / "t.csv", np.column_stack([x, 2 * x[:, 0] - x[:, 1]]), delimiter=",", header="a,b,y",
               comments="")
    lc = load_config(write_config(tmp_path, {
        "name": "sse", "task": "regression", "loss": "sse", "data": {"source": "csv", "path": str(tmp_path / "t.csv"),
                                                                       "target": "y", "test_split": 0.2},
        "model": {"layers": [{"dense": {"units": 1}}]}}))
    data = load_checked(lc)
    model = seeded_model(lc, data)  # untrained: the same weights for both evaluations
    at = {batch: evaluate_model(model, data, batch, "regression")["test_loss"] for batch in (8, 1000)}
    exact = float(np.sum((model.predict(data.x_test, verbose=0).reshape(-1) - data.y_test) ** 2))
    assert (len(data.x_test), at[8], at[1000]) == (600, pytest.approx(exact, rel=1e-5), pytest.approx(exact, rel=1e-5))


def test_evaluate_a_bare_keras3_weights_file_of_a_batch_norm_model(tmp_path: Path) -> None:
    import shutil

    layers = [TINY_CNN["model"]["layers"][0], {"batch_norm": {}}, *TINY_CNN["model"]["layers"][1:]]
    summary = train(write_config(tmp_path, TINY_CNN, model={"layers": layers}, train={"epochs": 1}),
                    runs_root=tmp_path / "runs")
    bare = Path(shutil.copy(Path(summary["run_dir"]) / names.WEIGHTS, tmp_path / "model.weights.h5"))
    result = evaluate(bare, config=Path(summary["run_dir"]) / names.CONFIG, out=tmp_path / "eval")
    assert result["accuracy"] == pytest.approx(summary["metrics"]["test_accuracy"], abs=1e-6)
