"""`dlrun runs`: statuses (crashed = running with a dead pid), listing runs and sweeps newest
first, and comparing two runs. Run directories are written with the same functions training uses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TINY_MLP, deep_merge, lock_held_by_another_process, run_cli, tf_loaded

from dlrun import compare_runs, list_runs
from dlrun.errors import RunDirError
from dlrun.metrics import epoch_columns
from dlrun.store import files
from dlrun.store.status import effective_status


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


@pytest.mark.parametrize(("summary", "expected"), [
    ({"status": "running", "pid": dead_pid(), "host": socket.gethostname()}, "crashed"),
    ({"status": "running", "pid": dead_pid(), "host": "another-machine"}, "running"),
    ({}, "crashed"),
    ({"status": "interrupted", "pid": dead_pid()}, "interrupted"),
    ({"status": "running"}, "running"),
], ids=["dead-pid", "other-host", "no-summary", "interrupted", "no-pid"])
def test_effective_status(tmp_path: Path, summary: dict[str, Any], expected: str) -> None:
    assert effective_status(summary, tmp_path) == expected


@pytest.mark.parametrize("pid", [os.getpid(), 1], ids=["this-test", "init"])
def test_a_running_run_whose_pid_was_reused_is_crashed(tmp_path: Path, pid: int) -> None:
    # the pid belongs to a live, unrelated process (a restart reuses pids), but no process holds the lock
    summary = {"status": "running", "pid": pid, "host": socket.gethostname()}
    assert effective_status(summary, tmp_path) == "crashed"


def test_a_run_whose_lock_another_process_holds_is_running(tmp_path: Path) -> None:
    summary = {"status": "running", "pid": dead_pid(), "host": socket.gethostname()}
    with lock_held_by_another_process(tmp_path):
        assert effective_status(summary, tmp_path) == "running"
    assert effective_status(summary, tmp_path) == "crashed"


def make_run(root: Path, name: str, started: str, status: str = "completed", config: dict[str, Any] | None = None,
             metrics: dict[str, float] | None = None, rows: int = 2) -> Path:
    """A run directory as `dlrun train` leaves it (config, metrics.csv, summary.json)."""
    path = root / f"{name}-{started.replace(':', '')}"
    path.mkdir(parents=True)
    files.write_text(path / "config.yaml", yaml.safe_dump(config or TINY_MLP))
    epochs = [{"epoch": e, "loss": 1.0 / e, "accuracy": 0.5 + e / 10, "val_loss": 1.2 / e,
               "val_accuracy": 0.4 + e / 10, "lr": 0.05, "seconds": 0.1} for e in range(1, rows + 1)]
    files.write_csv(path / "metrics.csv", epoch_columns("classification"), epochs)
    summary: dict[str, Any] = {"status": status, "name": name, "started": started, "seconds": 75.0,
                               "epochs_run": rows, "epochs": 4, "pid": dead_pid(), "host": socket.gethostname()}
    if metrics:
        summary["metrics"] = metrics
    files.write_json(path / "summary.json", summary)
    return path


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    make_run(root, "old", "2026-01-01T10:00:00", metrics={"test_accuracy": 0.8, "test_loss": 0.5})
    make_run(root, "killed", "2026-01-02T10:00:00", status="running", rows=3)
    sweep = root / "lr-sweep-20260103"
    (sweep / "trials" / "t0").mkdir(parents=True)
    (sweep / "trials" / "t1").mkdir()
    files.write_text(sweep / "sweep.yaml", "params: {optimizer.lr: [0.1, 0.01]}\n")
    # the shape `dlrun sweep` writes: no pid and no start time (the folder's time is used)
    files.write_json(sweep / "summary.json", {
        "status": "running", "sweep_dir": str(sweep), "name": "lr-sweep", "counts": {"total": 2, "completed": 1},
        "best": {"trial": "t1", "metric": "val_accuracy", "value": 0.9}, "seconds": 12.0})
    (root / "not-a-run").mkdir()
    return root


def test_list_runs_newest_first_with_sweeps_and_crashes(runs_root: Path) -> None:
    listed = [(info.name, info.kind, info.status, info.epochs) for info in list_runs(runs_root)]
    assert listed == [("lr-sweep", "sweep", "running", "1/2 trials"), ("killed", "run", "crashed", "3/4"),
                      ("old", "run", "completed", "2/4")]


def test_a_sweep_shows_its_best_trial_metric(runs_root: Path) -> None:
    assert list_runs(runs_root)[0].metrics == {"best_val_accuracy": 0.9}


def test_a_crashed_run_shows_its_last_epoch_metrics(runs_root: Path) -> None:
    crashed = next(info for info in list_runs(runs_root) if info.name == "killed")
    assert crashed.metrics["val_accuracy"] == pytest.approx(0.7)


def test_list_runs_of_a_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="no such directory"):
        list_runs(tmp_path / "nowhere")


def test_compare_lists_only_the_config_keys_that_differ(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", "2026-01-01T10:00:00", metrics={"test_accuracy": 0.8})
    b = make_run(tmp_path, "b", "2026-01-01T11:00:00", metrics={"test_accuracy": 0.85},
                 config=deep_merge(TINY_MLP, {"optimizer": {"lr": 0.1}, "train": {"epochs": 3}}))
    assert [(row["key"], row["values"]) for row in compare_runs(a, b)["config"]] == [
        ("optimizer.lr", [0.05, 0.1]), ("train.epochs", [2, 3])]


def test_compare_gives_metric_deltas(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", "2026-01-01T10:00:00", metrics={"test_accuracy": 0.8})
    b = make_run(tmp_path, "b", "2026-01-01T11:00:00", metrics={"test_accuracy": 0.85, "test_loss": 0.3})
    assert compare_runs(a, b)["metrics"] == [
        {"metric": "test_accuracy", "values": [0.8, 0.85], "delta": pytest.approx(0.05)},
        {"metric": "test_loss", "values": [None, 0.3], "delta": None}]


def test_cli_runs_table_shows_status_and_run_dir(runs_root: Path) -> None:
    out = run_cli("runs", runs_root).stdout
    assert all(text in out for text in ("crashed", "lr-sweep (sweep)", "killed-2026-01-02T100000", "1m 15s"))


def test_cli_runs_json(runs_root: Path) -> None:
    runs = json.loads(run_cli("runs", runs_root, "--json").stdout)["runs"]
    assert [run["status"] for run in runs] == ["running", "crashed", "completed"]


def test_cli_compare_shows_both_tables(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", "2026-01-01T10:00:00", metrics={"test_accuracy": 0.8})
    b = make_run(tmp_path, "b", "2026-01-01T11:00:00", config=deep_merge(TINY_MLP, {"seed": 7}))
    out = run_cli("runs", "--compare", a, b).stdout
    assert all(text in out for text in ("config differences", "seed", "metrics", "test_accuracy"))


def test_cli_compare_of_a_non_run_is_exit_2(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", "2026-01-01T10:00:00")
    (tmp_path / "empty").mkdir()
    proc = run_cli("runs", "--compare", a, tmp_path / "empty")
    assert (proc.returncode, "not a run directory" in proc.stderr) == (2, True)


def test_runs_does_not_import_tensorflow(runs_root: Path) -> None:
    assert tf_loaded("runs", str(runs_root)) == "TF_LOADED=False"


def test_a_transfer_run_is_listed_as_such(tmp_path: Path) -> None:
    run = make_run(tmp_path, "ft", "2026-01-01T10:00:00", metrics={"test_accuracy": 0.9})
    files.write_json(run / "transfer.json", {"from": "runs/source"})
    assert [(info.name, info.kind) for info in list_runs(tmp_path)] == [("ft", "transfer")]
