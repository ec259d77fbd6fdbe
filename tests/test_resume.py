"""Interrupt and resume real `dlrun train` processes: SIGTERM, SIGKILL, a second Ctrl-C.

The resumed run must equal an uninterrupted one exactly (same seed, CPU): every metrics.csv value
except wall-clock seconds, and the test accuracy.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import (
    LIVE_CNN,
    TINY_MLP,
    StopAfter,
    finish,
    lock_held_by_another_process,
    metric_rows,
    run_cli,
    start,
    wait_for_epochs,
    without_seconds,
    write_config,
)

from dlrun import list_runs, load_config, resume, train
from dlrun.config import dump_config
from dlrun.data import load_checked
from dlrun.engine.checkpoint import read_meta
from dlrun.engine.run import run_training, write_run_summary
from dlrun.errors import Interrupted, RunDirError
from dlrun.store import files, names
from dlrun.store.rundir import create_run_dir
from dlrun.store.summary import RunClock
from dlrun.ui.console import Reporter

pytestmark = pytest.mark.slow  # real training processes, signalled and resumed


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resume")
    write_config(path, LIVE_CNN)
    return path


@pytest.fixture(scope="module")
def baseline(work: Path) -> dict[str, Any]:
    """An uninterrupted run of the live config (trained in this process: same seed, the same metrics as a
    `dlrun train` process; the stopped and resumed runs it is compared with are processes)."""
    summary = train(work / "config.yaml", run_dir=work / "baseline")
    assert summary["status"] == "completed"
    return {"summary": json.loads(json.dumps(summary, default=str)), "rows": metric_rows(work / "baseline")}


@pytest.fixture(scope="module")
def sigterm(work: Path) -> dict[str, Any]:
    """A run sent SIGTERM after epoch 2, then resumed with --resume."""
    run_dir = work / "sigterm"
    proc = start("train", work / "config.yaml", "--run-dir", run_dir)
    wait_for_epochs(proc, run_dir, 2)
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    interrupted = json.loads((run_dir / "summary.json").read_text())
    rows_at_stop = metric_rows(run_dir)
    resumed = run_cli("train", "--resume", run_dir, "--json", timeout=300)
    return {"code": code, "stderr": err, "interrupted": interrupted, "rows_at_stop": rows_at_stop,
            "resumed": json.loads(resumed.stdout), "rows": metric_rows(run_dir)}


def test_sigterm_exits_130(sigterm: dict[str, Any]) -> None:
    assert sigterm["code"] == 130, sigterm["stderr"]


def test_sigterm_leaves_status_interrupted_at_the_last_complete_epoch(sigterm: dict[str, Any]) -> None:
    summary = sigterm["interrupted"]
    assert (summary["status"], summary["last_complete_epoch"]) == ("interrupted", len(sigterm["rows_at_stop"]))


def test_sigterm_stops_before_the_end(sigterm: dict[str, Any]) -> None:
    assert 2 <= sigterm["interrupted"]["last_complete_epoch"] < LIVE_CNN["train"]["epochs"]


def test_resumed_metrics_equal_an_uninterrupted_run(sigterm: dict[str, Any], baseline: dict[str, Any]) -> None:
    assert without_seconds(sigterm["rows"]) == without_seconds(baseline["rows"])


def test_resumed_test_accuracy_equals_an_uninterrupted_run(sigterm: dict[str, Any],
                                                          baseline: dict[str, Any]) -> None:
    assert sigterm["resumed"]["metrics"] == baseline["summary"]["metrics"]


def test_resumed_run_keeps_its_start_time(sigterm: dict[str, Any]) -> None:
    assert sigterm["resumed"]["started"] == sigterm["interrupted"]["started"]


@pytest.fixture(scope="module")
def crashed(work: Path) -> dict[str, Any]:
    """A run killed with SIGKILL after epoch 2: `dlrun runs` before, then resumed (config given too)."""
    run_dir = work / "runs" / "crashed"
    proc = start("train", work / "config.yaml", "--run-dir", run_dir)
    wait_for_epochs(proc, run_dir, 2)
    proc.kill()
    finish(proc)
    listed = json.loads(run_cli("runs", work / "runs", "--json").stdout)["runs"]
    resumed = run_cli("train", work / "config.yaml", "--resume", run_dir, "--json", timeout=300)
    return {"listed": listed, "resumed": resumed, "rows": metric_rows(run_dir)}


def test_sigkill_is_listed_as_crashed(crashed: dict[str, Any]) -> None:
    assert [run["status"] for run in crashed["listed"]] == ["crashed"]


def test_crashed_run_resumes_to_the_same_metrics(crashed: dict[str, Any], baseline: dict[str, Any]) -> None:
    assert without_seconds(crashed["rows"]) == without_seconds(baseline["rows"])


def test_resume_with_a_different_config_is_an_error(work: Path, baseline: dict[str, Any]) -> None:
    other = write_config(work, LIVE_CNN, name="other.yaml", optimizer={"lr": 0.001})
    proc = run_cli("train", other, "--resume", work / "baseline")
    assert (proc.returncode, "differs from the config" in proc.stderr) == (2, True)


def test_resume_of_a_completed_run_is_refused(work: Path, baseline: dict[str, Any]) -> None:
    with pytest.raises(RunDirError, match="completed; there is nothing to resume"):
        resume(work / "baseline")


def test_resume_of_a_run_that_is_still_running_is_refused(tmp_path: Path) -> None:
    run_dir = write_config(tmp_path, TINY_MLP).parent
    files.write_json(run_dir / "summary.json", {"status": "running", "pid": os.getpid(), "host": socket.gethostname()})
    with lock_held_by_another_process(run_dir) as pid, pytest.raises(RunDirError) as error:
        resume(run_dir)
    assert f"being trained by another dlrun process (pid {pid} on host" in str(error.value)


def test_a_crashed_run_whose_pid_was_reused_resumes(tmp_path: Path) -> None:
    # a run killed after epoch 1 whose pid a live, unrelated process has since (pid 1: after a restart)
    lc = load_config(write_config(tmp_path, TINY_MLP, data={"n_train": 100, "n_test": 50}))
    run = create_run_dir(lc.config.name, explicit=tmp_path / "run")
    files.write_text(run / names.CONFIG, dump_config(lc.config))
    write_run_summary(run, lc, "running", RunClock(), [])
    with pytest.raises(Interrupted):
        run_training(lc, run, load_checked(lc), Reporter(live=False), StopAfter(run.path, 1))
    killed = {**files.read_json(run / names.SUMMARY), "status": "running", "pid": 1}
    files.write_json(run / names.SUMMARY, killed)
    listed = [info.status for info in list_runs(tmp_path)]
    assert (listed, resume(run.path)["status"]) == (["crashed"], "completed")


@pytest.fixture(scope="module")
def double_sigint(work: Path) -> dict[str, Any]:
    """Ctrl-C twice, 20 ms apart, during a long run."""
    write_config(work, LIVE_CNN, name="long.yaml", train={"epochs": 500})
    run_dir = work / "double"
    proc = start("train", work / "long.yaml", "--run-dir", run_dir)
    wait_for_epochs(proc, run_dir, 1)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.02)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    code, _, err = finish(proc)
    return {"code": code, "stderr": err, "seconds": time.monotonic() - sent, "run_dir": run_dir}


def test_second_ctrl_c_exits_at_once(double_sigint: dict[str, Any]) -> None:
    # 500 epochs would take another ~50 s; what remains is interpreter shutdown (~1 s). A second
    # signal that lands in that shutdown, after Python restored the default handler, kills with -SIGINT.
    assert (double_sigint["code"] in (130, -signal.SIGINT), double_sigint["seconds"] < 15) == (True, True), \
        double_sigint["stderr"]


def test_second_ctrl_c_leaves_the_last_checkpoint_intact(double_sigint: dict[str, Any]) -> None:
    run_dir = double_sigint["run_dir"]
    meta = read_meta(run_dir / "checkpoint" / "state.npz")
    with np.load(run_dir / "checkpoint" / "state.npz") as npz:
        finite = all(np.isfinite(npz[k]).all() for k in npz.files if k != "__meta__")
    assert (meta["epoch"], finite) == (len(metric_rows(run_dir)), True)


def test_a_checkpoint_that_does_not_fit_is_exit_2_and_the_run_keeps_its_status(work: Path,
                                                                               baseline: dict[str, Any]) -> None:
    run_dir = work / "misfit"
    (run_dir / "checkpoint").mkdir(parents=True)
    (run_dir / "config.yaml").write_text((work / "baseline" / "config.yaml").read_text())
    files.write_json(run_dir / "summary.json", {"status": "interrupted", "last_complete_epoch": 1})
    np.savez(run_dir / "checkpoint" / "state.npz", m0=np.zeros(3), __meta__=np.array(json.dumps({"epoch": 1})))
    proc = run_cli("train", "--resume", run_dir)
    status = json.loads((run_dir / "summary.json").read_text())["status"]
    assert (proc.returncode, "model variables" in proc.stderr, status) == (2, True, "interrupted"), proc.stderr


def test_ctrl_c_while_starting_up_exits_130_and_writes_nothing(tmp_path: Path) -> None:
    # one second in, the process is still importing TensorFlow: no run directory exists yet
    config = write_config(tmp_path, LIVE_CNN)
    proc = start("train", config, "--runs", tmp_path / "runs")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    assert (code, err.strip().splitlines()[-1:], (tmp_path / "runs").exists()) == (130, ["interrupted"], False)


@pytest.fixture(scope="module")
def killed_npy_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A run on digits from X.npy / Y.npy, killed (SIGKILL) after epoch 2: resumable, checkpoint on disk."""
    from dlrun.data.synthetic import synthetic_digits

    path = tmp_path_factory.mktemp("npy")
    x, y = synthetic_digits(600, "clean", 0, 28, offset=0)
    (path / "data").mkdir()
    np.save(path / "data" / "X.npy", x)
    np.save(path / "data" / "Y.npy", y)
    config = write_config(path, LIVE_CNN, data={"source": "npy", "path": str(path / "data"), "test_split": 0.2})
    run_dir = path / "killed"
    proc = start("train", config, "--run-dir", run_dir)
    wait_for_epochs(proc, run_dir, 2)
    proc.kill()
    finish(proc)
    return {"run": run_dir, "data": path / "data"}


def _copy_run(killed: dict[str, Path], tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(killed["run"], tmp_path / "run"))


def test_resume_after_the_data_changed_is_refused_and_leaves_the_run_as_it_was(killed_npy_run: dict[str, Path],
                                                                                tmp_path: Path) -> None:
    from dlrun.errors import DataError

    run_dir = _copy_run(killed_npy_run, tmp_path)
    before = (run_dir / "summary.json").read_bytes()
    labels = killed_npy_run["data"] / "Y.npy"
    original = np.load(labels)
    np.save(labels, np.roll(original, 1))  # the same files, other labels
    try:
        with pytest.raises(DataError, match="the data changed since this run started"):
            resume(run_dir)
    finally:
        np.save(labels, original)
    assert (run_dir / "summary.json").read_bytes() == before


def test_resume_with_optimizer_state_that_does_not_fit_is_refused(killed_npy_run: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    run_dir = _copy_run(killed_npy_run, tmp_path)
    state = run_dir / "checkpoint" / "state.npz"
    with np.load(state) as npz:
        arrays = {k: npz[k] for k in npz.files}
    last = max((k for k in arrays if k.startswith("o")), key=lambda k: int(k[1:]))
    del arrays[last]  # one optimizer variable short, as a checkpoint of another optimizer set-up would be
    np.savez(state, **arrays)
    with pytest.raises(RunDirError, match="optimizer variables, the optimizer has .*cannot be restored"):
        resume(run_dir)
