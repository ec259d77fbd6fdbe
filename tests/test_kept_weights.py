"""Every number a run reports is of the weights it kept: under restore_best_weights the summary, the
sweep's results.csv and the closing table hold the kept epoch's metrics (metrics.csv keeps every epoch),
and the run says how it ended (early stopping, the epoch whose weights it kept)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_MLP, cli_env, run_cli, write_config

from dlrun import evaluate, sweep, train
from dlrun.store import files, names

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
# Keras' rule: an epoch is better only when it beats the best by more than min_delta. No epoch beats epoch 1's
# val_loss by 10, so epoch 1 is the best and the run ends with its weights; patience 5 lets all 3 epochs run.
KEEP_FIRST = {"monitor": "val_loss", "patience": 5, "min_delta": 10.0, "restore_best_weights": True}
# val_accuracy cannot improve by 0.5 twice: epoch 1 is the best, patience 1 stops the run after epoch 2 of 4.
STOP_AT_2 = {"monitor": "val_accuracy", "patience": 1, "min_delta": 0.5, "restore_best_weights": True}


def epoch_rows(run_dir: str | Path) -> list[dict[str, str]]:
    return files.read_csv(Path(run_dir) / names.METRICS)


@pytest.fixture(scope="module")
def kept_first(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 3-epoch run that ends with the weights of epoch 1."""
    directory = tmp_path_factory.mktemp("kept")
    config = write_config(directory, TINY_MLP, train={"epochs": 3, "early_stopping": KEEP_FIRST})
    return train(config, runs_root=directory / "runs")


def test_summary_epoch_metrics_are_the_kept_epochs_row(kept_first: dict[str, Any]) -> None:
    rows = epoch_rows(kept_first["run_dir"])
    kept = {k: float(rows[0][k]) for k in EPOCH_METRICS}
    assert (len(rows), kept_first["kept_epoch"], {k: kept_first["metrics"][k] for k in EPOCH_METRICS}) \
        == (3, 1, kept)


def test_summary_test_metrics_are_those_of_the_saved_weights(kept_first: dict[str, Any]) -> None:
    scored = evaluate(kept_first["run_dir"])
    metrics = kept_first["metrics"]
    assert (metrics["test_loss"], metrics["test_accuracy"]) == (pytest.approx(scored["loss"], abs=1e-6),
                                                                pytest.approx(scored["accuracy"], abs=1e-6))


def test_a_run_that_ran_every_epoch_is_not_stopped_early(kept_first: dict[str, Any]) -> None:
    first = float(epoch_rows(kept_first["run_dir"])[0]["val_loss"])
    assert (kept_first["stopped_early"], kept_first["stopped_epoch"], kept_first["stopping"]) == \
        (False, None, f"kept the weights of epoch 1 (val_loss {first:.4f})")


def test_sweep_results_rank_on_the_kept_weights(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, train={"epochs": 3, "early_stopping": KEEP_FIRST})
    summary = sweep(config, lr="0.05,0.1", sweep_dir=tmp_path / "sweep", runs_root=tmp_path)
    rows = files.read_csv(tmp_path / "sweep" / names.SWEEP_RESULTS)
    seen = [(row["kept_epoch"], row["val_loss"], row["val_accuracy"]) for row in rows]
    kept = [("1", *(epoch_rows(tmp_path / "sweep" / names.SWEEP_TRIALS / row["trial"])[0][k]
                    for k in ("val_loss", "val_accuracy"))) for row in rows]
    best = float(min(rows, key=lambda r: -float(r["val_accuracy"]))["val_accuracy"])
    assert ([(k, float(a), float(b)) for k, a, b in seen], summary["best"]["value"]) == \
        ([(k, float(a), float(b)) for k, a, b in kept], best)


# --- saying how the run ended, on a terminal and in a pipe


def stop_config(directory: Path) -> Path:
    return write_config(directory, TINY_MLP, train={"epochs": 4, "early_stopping": STOP_AT_2})


def expected_sentence(run_dir: Path) -> str:
    first = float(epoch_rows(run_dir)[0]["val_accuracy"])
    return ("stopped early at epoch 2 of 4 (val_accuracy did not improve by 0.5 for 1 epoch); "
            f"kept the weights of epoch 1 (val_accuracy {first:.4f})")


def the_run_dir(runs: Path) -> Path:
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return run_dir


def test_train_in_a_pipe_says_it_stopped_early_and_which_weights_it_kept(tmp_path: Path) -> None:
    proc = run_cli("train", stop_config(tmp_path), "--runs", tmp_path / "runs")
    run_dir = the_run_dir(tmp_path / "runs")
    summary = files.read_json(run_dir / names.SUMMARY)
    assert proc.returncode == 0, proc.stderr
    assert (expected_sentence(run_dir) in proc.stdout, summary["stopped_early"], summary["stopped_epoch"],
            summary["kept_epoch"]) == (True, True, 2, 1)


def test_train_on_a_terminal_says_it_and_shows_the_kept_epochs_metrics(tmp_path: Path) -> None:
    parent, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "dlrun", "train", str(stop_config(tmp_path)), "--runs",
                             str(tmp_path / "runs")], stdout=child, stderr=subprocess.PIPE,
                            env=cli_env(COLUMNS="200"))
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(parent, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(parent)
    assert proc.wait(timeout=600) == 0, proc.stderr.read() if proc.stderr else ""
    screen = b"".join(chunks).decode(errors="replace").replace("\r", "")
    run_dir = the_run_dir(tmp_path / "runs")
    kept = float(epoch_rows(run_dir)[0]["val_accuracy"])
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in screen.splitlines() if "│" in line]
    shown = {row[0]: row[1] for row in cells if len(row) == 2}
    assert (expected_sentence(run_dir) in screen, shown["val_accuracy"], shown["kept weights of epoch"]) == \
        (True, f"{kept:.4f}", "1")


def test_train_json_records_how_it_ended(tmp_path: Path) -> None:
    proc = run_cli("train", stop_config(tmp_path), "--runs", tmp_path / "runs", "--json")
    out = json.loads(proc.stdout)
    assert (out["stopped_early"], out["stopped_epoch"], out["kept_epoch"], out["stopping"]) == \
        (True, 2, 1, expected_sentence(Path(out["run_dir"])))
