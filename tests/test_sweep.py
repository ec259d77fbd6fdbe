"""`dlrun sweep`: planning, divergence and failure inside a sweep, artifacts, resume after a kill,
reproducible best trial, and results that do not depend on --jobs. Tiny data throughout."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import NO_TF_PROBE, TINY_CNN, TINY_MLP, cli_env, run_cli, run_in_process, write_config

from dlrun import sweep
from dlrun.errors import ConfigError
from dlrun.store import files, names
from dlrun.sweeps.executors.processes import ProcessExecutor
from dlrun.sweeps.plan import plan_sweep

FINAL = {"completed", "diverged"}
METRICS = ["loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy"]
GRID_FLAGS = ["--lr", "0.01,0.1,1e4", "--lambda", "0.01,0.1", "--mode", "grid"]


def results(sweep_dir: Path) -> list[dict[str, str]]:
    """The rows of a sweep's results.csv."""
    return files.read_csv(sweep_dir / names.SWEEP_RESULTS)


def metric_view(sweep_dir: Path) -> list[tuple[str, ...]]:
    """Trial, swept values, status and metric columns of results.csv (everything but timings)."""
    return [tuple(row[c] for c in ["trial", "optimizer.lr", "model.l2", "status", "epochs_run", *METRICS])
            for row in results(sweep_dir)]


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A 3x2 grid on tiny data where lr=1e4 diverges; run once for the module."""
    tmp = tmp_path_factory.mktemp("grid")
    config = write_config(tmp, TINY_MLP)
    out = tmp / "sweep"
    return out, run_cli("sweep", config, *GRID_FLAGS, "--sweep-dir", out, "--json")


def test_grid_sweep_exits_zero_despite_diverged_trials(grid_sweep: tuple[Path, Any]) -> None:
    assert grid_sweep[1].returncode == 0, grid_sweep[1].stderr


def test_grid_records_divergence_and_completes_the_rest(grid_sweep: tuple[Path, Any]) -> None:
    statuses = {(row["optimizer.lr"], row["model.l2"]): row["status"] for row in results(grid_sweep[0])}
    expected = {(lr, l2): "diverged" if lr == "10000.0" else "completed"
                for lr in ("0.01", "0.1", "10000.0") for l2 in ("0.01", "0.1")}
    assert statuses == expected


def test_diverged_trial_records_its_epoch(grid_sweep: tuple[Path, Any]) -> None:
    summary = json.loads(grid_sweep[1].stdout)
    diverged = [t for t in summary["trials"] if t["status"] == "diverged"]
    assert diverged and all(t["diverged_epoch"] >= 1 and "exploded" in t["note"] for t in diverged)


def test_results_csv_has_the_documented_columns(grid_sweep: tuple[Path, Any]) -> None:
    header = (grid_sweep[0] / names.SWEEP_RESULTS).read_text().splitlines()[0]
    assert header == ("trial,optimizer.lr,model.l2,status,epochs_run,kept_epoch,score,loss,accuracy,val_loss,"
                      "val_accuracy,test_loss,test_accuracy,seconds,threads,inter_op_threads")


def test_sweep_writes_every_artifact(grid_sweep: tuple[Path, Any]) -> None:
    names = {p.name for p in grid_sweep[0].iterdir()}
    assert {"sweep.yaml", "trials", "results.csv", "summary.json", "best.yaml", "heatmap.png"} <= names


def test_each_trial_is_a_full_run_directory(grid_sweep: tuple[Path, Any]) -> None:
    trial = grid_sweep[0] / "trials" / "003"
    expected = {"config.yaml", "metrics.csv", "summary.json", "model.keras", "weights.weights.h5",
                "history.png", "model.txt"}
    assert expected <= {p.name for p in trial.iterdir()}


def test_summary_names_the_best_trial(grid_sweep: tuple[Path, Any]) -> None:
    summary = json.loads(grid_sweep[1].stdout)
    completed = [row for row in results(grid_sweep[0]) if row["status"] == "completed"]
    top = max(completed, key=lambda row: (float(row["val_accuracy"]), -int(row["trial"])))
    assert (summary["best"]["trial"], summary["counts"]) == (top["trial"], {"total": 6, "completed": 4,
                                                                            "diverged": 2})


def test_best_yaml_retrains_to_the_best_metric(grid_sweep: tuple[Path, Any], tmp_path: Path) -> None:
    best = json.loads(grid_sweep[1].stdout)["best"]
    proc = run_in_process("train", grid_sweep[0] / "best.yaml", "--runs", tmp_path, "--json")
    trial = files.read_json(grid_sweep[0] / "trials" / best["trial"] / "summary.json")
    assert json.loads(proc.stdout)["metrics"] == trial["metrics"]


@pytest.mark.slow
def test_jobs_2_gives_the_same_results_as_jobs_1(grid_sweep: tuple[Path, Any], tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP)
    proc = run_in_process("sweep", config, *GRID_FLAGS, "--sweep-dir", tmp_path / "parallel", "--jobs", "2")
    assert proc.returncode == 0 and metric_view(tmp_path / "parallel") == metric_view(grid_sweep[0])


@pytest.mark.slow
def test_a_worker_whose_memory_grew_is_replaced(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, train={"epochs": 1})
    summary = sweep(config, [], "0.05,0.1", "0.01,0.02", "zip", None, tmp_path / "s",
                    executor=ProcessExecutor(1, growth_mib=-1))  # any peak "grew": a fresh worker each trial
    pids = {files.read_json(tmp_path / "s" / "trials" / t["trial"] / "summary.json")["pid"]
            for t in summary["trials"]}
    assert (summary["counts"], len(pids)) == ({"total": 2, "completed": 2}, 2)


def test_results_are_rewritten_at_most_every_records_every_and_whole_at_the_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dlrun.sweeps import session

    writes: list[int] = []
    write = session.SweepSession.write

    def counted(self: session.SweepSession, status: str) -> dict[str, Any]:
        writes.append(sum(o.final for o in self.outcomes.values()))  # trials ended at each rewrite
        return write(self, status)

    monkeypatch.setattr(session.SweepSession, "write", counted)
    monkeypatch.setattr(session, "RECORDS_EVERY", 3600.0)
    config = write_config(tmp_path, TINY_MLP, train={"epochs": 1})
    sweep(config, [], "0.05,0.1,0.2", None, None, None, tmp_path / "s")
    assert writes == [0, 3] and len(results(tmp_path / "s")) == 3  # the sweep's start, then its end


def test_failed_trial_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_CNN, train={"epochs": 1},
                          sweep={"params": {"model.layers.0.conv2d.kernel_size": [3, 40]}})
    proc = run_cli("sweep", config, "--sweep-dir", tmp_path / "s", "--json")
    statuses = [(t["status"], "kernel" in t.get("note", "") or "shape" in t.get("note", ""))
                for t in json.loads(proc.stdout)["trials"]]
    assert (proc.returncode, statuses) == (0, [("completed", False), ("failed", True)])


# --- planning and config errors (no TensorFlow, fast) ---------------------------------------------

def test_grid_is_the_cartesian_product(tmp_path: Path) -> None:
    plan = plan_sweep(write_config(tmp_path, TINY_MLP), lr="0.1,1", lam="0,0.5,1", mode="grid")
    assert [tuple(t.params.values()) for t in plan.trials] == [
        (0.1, 0.0), (0.1, 0.5), (0.1, 1.0), (1.0, 0.0), (1.0, 0.5), (1.0, 1.0)]


def test_zip_pairs_values_and_flags_override_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, sweep={"mode": "grid", "params": {"optimizer.lr": [5, 6]}})
    plan = plan_sweep(config, lr="0.1,1,2", lam="0,0.5,1", mode="zip")
    assert [(t.id, tuple(t.params.values())) for t in plan.trials] == [
        ("000", (0.1, 0.0)), ("001", (1.0, 0.5)), ("002", (2.0, 1.0))]


def test_every_trial_keeps_the_base_seed(tmp_path: Path) -> None:
    plan = plan_sweep(write_config(tmp_path, TINY_MLP, seed=7), lr="0.1,1", lam="0,1")
    assert {t.seed for t in plan.trials} == {7}


def test_bad_swept_value_is_located_at_its_list_item(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, sweep={"params": {"optimizer.lr": [0.1, -1]}})
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1) if text.strip() == "- -1")
    with pytest.raises(ConfigError) as caught:
        plan_sweep(config)
    assert str(caught.value).startswith(f"{config}:{line}: optimizer.lr:")


def test_value_listed_twice_in_a_grid_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="would be the same run"):
        plan_sweep(write_config(tmp_path, TINY_MLP), lr="0.1,1e-1")


def test_mismatched_zip_lengths_exit_2(tiny_mlp_config: Path, tmp_path: Path) -> None:
    proc = run_cli("sweep", tiny_mlp_config, "--mode", "zip", "--lr", "0.1,1", "--lambda", "0,0.1,1",
                   "--sweep-dir", tmp_path / "s")
    assert (proc.returncode, "equal lengths" in proc.stderr, (tmp_path / "s").exists()) == (2, True, False)


def test_unknown_swept_key_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, sweep={"params": {"optimizer.learning_rate": [0.1, 1]}})
    proc = run_cli("sweep", config, "--sweep-dir", tmp_path / "s")
    assert (proc.returncode, "is not a config key" in proc.stderr) == (2, True)


def test_sweep_help_and_config_errors_do_not_import_tensorflow(tiny_mlp_config: Path) -> None:
    loaded = [subprocess.run([sys.executable, "-c", NO_TF_PROBE, *args], capture_output=True, text=True,
                             env=cli_env(), timeout=120).stderr.strip().splitlines()[-1]
              for args in (["sweep", "--help"], ["sweep", str(tiny_mlp_config), "--lr", "-1,1"])]
    assert loaded == ["TF_LOADED=False", "TF_LOADED=False"]


def test_sweep_without_a_space_exits_2(tiny_mlp_config: Path) -> None:
    proc = run_cli("sweep", tiny_mlp_config)
    assert (proc.returncode, "nothing to sweep" in proc.stderr) == (2, True)


# --- interruption and resume ----------------------------------------------------------------------

def _start(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "dlrun", "sweep", *map(str, args)], env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended before it was killed: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the sweep never reached the point to kill it")


def _status(trial: Path) -> str | None:
    try:
        return str(files.read_json(trial / "summary.json").get("status"))
    except Exception:  # not written yet, or mid-replace
        return None


def _trials(sweep_dir: Path) -> list[Path]:
    trials = sweep_dir / "trials"
    return sorted(trials.iterdir()) if trials.is_dir() else []


def _ended(sweep_dir: Path) -> dict[str, bytes]:
    """summary.json bytes of the trials that have ended."""
    return {p.name: (p / "summary.json").read_bytes() for p in _trials(sweep_dir) if _status(p) in FINAL}


@pytest.mark.slow
def test_sigterm_exits_130_and_resume_finishes_each_trial_once(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, train={"epochs": 6, "batch_size": 16})
    out = tmp_path / "s"
    proc = _start(config, "--mode", "zip", "--lr", "0.02,0.05,0.1,1e4", "--lambda", "0.01,0.01,0.01,0.1",
                  "--sweep-dir", out)
    _wait_for(lambda: _status(out / "trials" / "000") == "completed" and (out / "trials" / "001" /
                                                                            "summary.json").exists(), proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130
    before = _ended(out)
    resumed = run_cli("sweep", "--resume", out, "--json")
    statuses = [t["status"] for t in json.loads(resumed.stdout)["trials"]]
    assert (statuses, {k: v for k, v in _ended(out).items() if k in before}) == (
        ["completed", "completed", "completed", "diverged"], before)


@pytest.mark.slow
def test_sigkill_with_workers_then_resume_never_reruns_an_ended_trial(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, train={"epochs": 5, "batch_size": 16})
    out = tmp_path / "s"
    proc = _start(config, "--lr", "0.02,0.05", "--lambda", "0.01,0.02", "--mode", "grid", "--jobs", "2",
                  "--sweep-dir", out)
    _wait_for(lambda: len(_ended(out)) >= 1 and any(
        (p / "checkpoint" / "state.npz").exists() and _status(p) == "running" for p in _trials(out)), proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    before = _ended(out)
    resumed = run_cli("sweep", "--resume", out, "--jobs", "2", "--json")
    assert resumed.returncode == 0, (resumed.returncode, resumed.stderr[-3000:])  # once empty under load: say why
    summary = json.loads(resumed.stdout)
    rows = [len(files.read_csv(out / "trials" / t["trial"] / "metrics.csv")) for t in summary["trials"]]
    assert ({t["status"] for t in summary["trials"]}, rows, {k: _ended(out)[k] for k in before}) == (
        {"completed"}, [5] * 4, before)



@pytest.mark.slow
def test_resume_after_a_kill_between_a_trials_folder_and_its_config_runs_that_trial(tmp_path: Path) -> None:
    """A SIGKILL can land while the sweep writes a starting trial's config.yaml: its folder then holds only the
    atomic write's temporary file, which the resumed sweep removes instead of refusing the folder as a run."""
    config = write_config(tmp_path, TINY_MLP, train={"epochs": 3, "batch_size": 16})
    out = tmp_path / "s"
    proc = _start(config, "--lr", "0.02,0.05,0.1", "--mode", "grid", "--jobs", "1", "--sweep-dir", out)
    _wait_for(lambda: len(_ended(out)) >= 1, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    before = _ended(out)
    for trial in (out / "trials" / t for t in ("000", "001", "002") if t not in before):
        shutil.rmtree(trial, ignore_errors=True)
        trial.mkdir(parents=True)
        (trial / ".config.yaml.k1ll3d.tmp.yaml").write_text("name: cut")
    resumed = run_cli("sweep", "--resume", out, "--json")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert {t["status"] for t in json.loads(resumed.stdout)["trials"]} == {"completed"}
    assert not list(out.rglob(".*.tmp*"))

# --- honest ranking: validation chooses, the test split is only reported ---------------------------

def test_ranking_on_a_test_metric_is_refused_naming_the_validation_metric(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, sweep={"params": {"optimizer.lr": [0.1, 1]}, "metric": "test_accuracy"})
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1) if "metric:" in text)
    with pytest.raises(ConfigError) as caught:
        plan_sweep(config)
    assert (str(caught.value).startswith(f"{config}:{line}: sweep.metric:"), "'val_accuracy'" in str(caught.value)) \
        == (True, True)


def test_a_regression_sweep_ranks_on_val_loss_by_default(tmp_path: Path) -> None:
    table = {"columns": ["x", "y"], "rows": [[float(i), 2.0 * i] for i in range(20)]}
    config = write_config(tmp_path, {"name": "reg", "task": "regression", "loss": "sse",
                                     "data": {"source": "table", "target": "y", "table": table},
                                     "model": {"layers": [{"dense": {"units": 1}}]},
                                     "sweep": {"params": {"optimizer.lr": [0.01, 0.1]}}})
    plan = plan_sweep(config)
    assert (plan.metric, plan.goal) == ("val_loss", "min")


def test_ranking_on_validation_without_a_validation_split_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, data={"validation": 0}, sweep={"params": {"optimizer.lr": [0.1, 1]}})
    with pytest.raises(ConfigError, match="sweep.metric: 'val_accuracy' needs a validation split"):
        plan_sweep(config)


def test_sweeping_train_threads_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, sweep={"params": {"train.threads": [1, 2]}})
    with pytest.raises(ConfigError, match="train.threads cannot be swept"):
        plan_sweep(config)


def test_validation_columns_are_not_the_test_columns(grid_sweep: tuple[Path, Any]) -> None:
    completed = [row for row in results(grid_sweep[0]) if row["status"] == "completed"]
    assert len(completed) == 4 and [r["val_accuracy"] for r in completed] != [r["test_accuracy"] for r in completed]


def test_sweep_summary_says_where_validation_came_from(grid_sweep: tuple[Path, Any]) -> None:
    assert json.loads(grid_sweep[1].stdout)["validation"] == "held out from training"


def test_leaderboard_on_the_test_split_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dlrun.ui.console import Reporter

    config = write_config(tmp_path, TINY_MLP, data={"validation": "test"}, train={"epochs": 1})
    summary = sweep(config, [], "0.05", "0.01", "zip", None, tmp_path / "s", reporter=Reporter(live=False))
    out = " ".join(capsys.readouterr().out.split())
    assert (summary["validation"], "ranked on val_accuracy, measured on the test split" in out) == ("test split", True)


def test_sweep_no_cache_reads_the_source_and_writes_no_cache_entry(tmp_path: Path, data_cache: Path) -> None:
    import numpy as np

    from dlrun.sweeps.data import load_sweep_data
    from dlrun.ui.console import Reporter

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X_train=rng.integers(0, 256, (40, 28, 28), np.uint8), y_train=np.arange(40) % 10)
    config = write_config(tmp_path, TINY_MLP, data={"source": "npz", "path": str(tmp_path / "d.npz")})
    plan = plan_sweep(config, lr="0.1,1")
    uncached = next(iter(load_sweep_data(plan, Reporter(json_mode=True), use_cache=False)[0].values()))
    entries = list(data_cache.rglob("*.bin"))
    cached = next(iter(load_sweep_data(plan, Reporter(json_mode=True))[0].values()))
    assert (uncached.cache, entries, cached.cache) == ("off", [], "miss")


def test_sweep_and_transfer_take_no_cache() -> None:
    helps = [run_cli(command, "--help").stdout for command in ("sweep", "transfer")]
    assert ["--no-cache" in text for text in helps] == [True, True]


# --- failures that show: tracebacks, a stop after failures in a row, crashed sweeps ----------------

@pytest.fixture(scope="module")
def failing_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Three trials in a row that fail (kernels larger than the images), then one that would work;
    run with DLRUN_DEBUG=1 and --no-cache."""
    tmp = tmp_path_factory.mktemp("failing")
    config = write_config(tmp, TINY_CNN, train={"epochs": 1},
                          sweep={"params": {"model.layers.0.conv2d.kernel_size": [40, 41, 42, 3]}})
    out = tmp / "s"
    return out, run_cli("sweep", config, "--sweep-dir", out, "--no-cache", env=cli_env(DLRUN_DEBUG="1"))


def test_a_failed_trial_keeps_its_traceback(failing_sweep: tuple[Path, Any]) -> None:
    error = failing_sweep[0] / "trials" / "000" / names.ERROR
    assert error.read_text().startswith("Traceback") and "kernel" in error.read_text().splitlines()[-1]


def test_failures_in_a_row_stop_the_sweep_with_exit_1(failing_sweep: tuple[Path, Any]) -> None:
    out, proc = failing_sweep
    summary = files.read_json(out / names.SUMMARY)
    assert (proc.returncode, "3 trials in a row failed" in proc.stderr, summary["status"],
            (out / "trials" / "003" / names.SUMMARY).exists()) == (1, True, "failed", False), proc.stderr


def test_dlrun_debug_shows_a_failed_trials_traceback(failing_sweep: tuple[Path, Any]) -> None:
    assert failing_sweep[1].stderr.count("Traceback (most recent call last)") == 3


def test_diverged_trials_are_results_not_failures(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, train={"epochs": 1}, sweep={"max_failures": 1})
    summary = sweep(config, [], "50,60,0.05", "50,60,0.01", "zip", None, tmp_path / "s")  # the exploding corner
    assert (summary["status"], summary["counts"]) == ("completed", {"total": 3, "diverged": 2, "completed": 1})


def test_a_killed_sweep_is_listed_as_crashed(tmp_path: Path) -> None:
    from dlrun import list_runs

    config = write_config(tmp_path, TINY_MLP, train={"epochs": 50})
    out = tmp_path / "runs" / "s"
    proc = _start(config, "--lr", "0.05", "--sweep-dir", out)
    _wait_for(lambda: _status(out) == "running", proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert [(info.kind, info.status) for info in list_runs(tmp_path / "runs")] == [("sweep", "crashed")]


@pytest.mark.slow
def test_sweep_workers_honour_train_threads(tmp_path: Path) -> None:
    from dlrun.sweeps.executors.devices import cpu_count

    threads = cpu_count() + 1  # never a worker's share of the cores
    config = write_config(tmp_path, TINY_MLP, train={"epochs": 1, "threads": threads})
    summary = sweep(config, [], "0.05", None, None, None, tmp_path / "s", executor=ProcessExecutor(1))
    trial = files.read_json(tmp_path / "s" / "trials" / "000" / names.SUMMARY)
    assert (trial["threads"], summary["threads"]) == (threads, {"threads": threads, "from": "train.threads"})
