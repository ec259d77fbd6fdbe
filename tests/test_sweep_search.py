"""Sweeps that search (issue 12): a grid with hopeless trials pruned (asha) on both local executors,
random and tpe sampling, coarse-to-fine refinement, resume of pruned, sampled and refined sweeps with no
trial run twice, and the Optuna study kept in the sweep directory. Tiny data throughout."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import TINY_MLP, deep_merge, modules_loaded, run_cli, start, write_config
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from dlrun import sweep
from dlrun.errors import Interrupted, RunDirError
from dlrun.store import files, names
from dlrun.sweeps.executors import SequentialExecutor, TrialResult, TrialTask
from dlrun.sweeps.executors.processes import ProcessExecutor

SMALL = deep_merge(TINY_MLP, {"data": {"image_size": [8, 8]}, "train": {"epochs": 3, "batch_size": 32}})
PRUNED_GRID = {"params": {"optimizer.lr": [1.0, 0.1, 0.01, 0.001], "model.l2": [0.0, 0.01]},
               "prune": {"method": "asha", "min_epochs": 1, "reduction": 2}}
COLUMNS = ["trial", "optimizer.lr", "model.l2", "status", "epochs_run", "pruned_epoch", "loss", "val_loss",
           "val_accuracy", "test_accuracy"]


pytestmark = pytest.mark.xdist_group("sweep_search")  # its module fixture runs once, on one worker

def study(sweep_dir: Path, name: str = names.SWEEP_STUDY_NAME) -> optuna.Study:
    """The sweep's Optuna study, loaded as optuna-dashboard or a user would."""
    storage = JournalStorage(JournalFileBackend(str(sweep_dir / names.SWEEP_STUDY)))
    return optuna.load_study(study_name=name, storage=storage)


def rows(sweep_dir: Path) -> list[dict[str, str]]:
    return files.read_csv(sweep_dir / names.SWEEP_RESULTS)


def view(sweep_dir: Path, columns: list[str] = COLUMNS) -> list[tuple[str, ...]]:
    """results.csv without the seconds."""
    return [tuple(row[c] for c in columns) for row in rows(sweep_dir)]


def ended(sweep_dir: Path) -> dict[str, bytes]:
    """summary.json bytes of each trial that has ended."""
    out = {}
    for trial in sorted((sweep_dir / names.SWEEP_TRIALS).iterdir()):
        summary = trial / names.SUMMARY
        if summary.exists() and json.loads(summary.read_text())["status"] in ("completed", "pruned", "diverged"):
            out[trial.name] = summary.read_bytes()
    return out


class StopAfter(SequentialExecutor):
    """The in-process executor, asked to stop (as by Ctrl-C) once `count` trials have ended."""

    def __init__(self, count: int):
        self.count, self.done = count, 0

    def run(self, tasks: Any, datasets: Any, events: Any, stop: Any) -> None:
        outer = self

        class Counting:
            def started(self, task: TrialTask) -> None:
                events.started(task)

            def epoch_ended(self, trial_id: str, epoch: int, row: dict[str, Any]) -> bool:
                return events.epoch_ended(trial_id, epoch, row)

            def finished(self, result: TrialResult) -> None:
                events.finished(result)
                outer.done += 1
                if outer.done >= outer.count:
                    stop.requested = True

        super().run(tasks, datasets, Counting(), stop)


# --- a grid with prune: asha, in this process (the CLI) and in a worker process -----------------------

@pytest.fixture(scope="module")
def pruned_grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    tmp = tmp_path_factory.mktemp("pruned")
    config = write_config(tmp, SMALL, sweep=PRUNED_GRID)
    return tmp / "s", run_cli("sweep", config, "--sweep-dir", tmp / "s")


def test_pruned_grid_prints_a_leaderboard_with_pruned_trials_marked(pruned_grid: tuple[Path, Any]) -> None:
    out, proc = pruned_grid
    assert proc.returncode == 0, proc.stderr
    assert "pruned @1" in proc.stdout and "completed" in proc.stdout


def test_pruned_trials_stop_early_and_keep_their_records(pruned_grid: tuple[Path, Any]) -> None:
    out = pruned_grid[0]
    pruned = [r for r in rows(out) if r["status"] == "pruned"]
    assert pruned and len(pruned) < len(rows(out))
    for row in pruned:
        trial = out / names.SWEEP_TRIALS / row["trial"]
        assert row["epochs_run"] == row["pruned_epoch"] and int(row["pruned_epoch"]) < 3
        assert len(files.read_csv(trial / names.METRICS)) == int(row["pruned_epoch"])
        assert (trial / names.CHECKPOINT_DIR / names.CHECKPOINT_STATE).is_file()
        assert (trial / names.HISTORY_PLOT).is_file() and row["val_accuracy"] != ""
    summary = files.read_json(out / names.SUMMARY)
    assert summary["counts"]["pruned"] == len(pruned) and summary["best"]["trial"] not in {r["trial"] for r in pruned}
    assert (out / names.SWEEP_HEATMAP).is_file() and (out / names.SWEEP_BEST).is_file()


def test_dlrun_runs_counts_the_pruned_trials(pruned_grid: tuple[Path, Any]) -> None:
    from dlrun.commands.runs import list_runs

    [info] = list_runs(pruned_grid[0].parent)
    pruned = sum(r["status"] == "pruned" for r in rows(pruned_grid[0]))
    assert info.epochs.endswith(f"/8 trials, {pruned} pruned")


def test_the_study_in_the_sweep_directory_records_every_decision(pruned_grid: tuple[Path, Any]) -> None:
    out = pruned_grid[0]
    trials = {t.user_attrs["dlrun_trial"]: t for t in study(out).get_trials()}
    statuses = {r["trial"]: r["status"] for r in rows(out)}
    assert {k: t.state for k, t in trials.items()} == {
        k: TrialState.PRUNED if s == "pruned" else TrialState.COMPLETE for k, s in statuses.items()}
    for row in rows(out):  # each epoch but the last was reported once, in order
        assert sorted(trials[row["trial"]].intermediate_values) == list(range(1, min(int(row["epochs_run"]), 2) + 1))


def test_a_worker_process_relays_each_epoch_and_prunes_alike(pruned_grid: tuple[Path, Any], tmp_path: Path) -> None:
    config = write_config(tmp_path, SMALL, sweep=PRUNED_GRID)
    sweep(config, sweep_dir=tmp_path / "s", executor=ProcessExecutor(1))
    assert view(tmp_path / "s") == view(pruned_grid[0])


# --- random and tpe: sampled lazily, resumed without sampling or running a trial twice ----------------

def test_random_search_resumes_with_no_trial_sampled_or_run_twice(tmp_path: Path) -> None:
    space = {"search": "random", "trials": 4, "seed": 3, "params": {"optimizer.lr": {"log_uniform": [0.001, 1.0]},
                                                                   "model.l2": {"uniform": [0.0, 0.01]}}}
    config = write_config(tmp_path, deep_merge(SMALL, {"train": {"epochs": 2}}), sweep=space)
    out = tmp_path / "s"
    with pytest.raises(Interrupted):
        sweep(config, sweep_dir=out, executor=StopAfter(2))
    before = ended(out)
    summary = sweep(None, resume=out)
    assert [t["trial"] for t in summary["trials"]] == ["000", "001", "002", "003"]
    assert {k: ended(out)[k] for k in before} == before and len(before) == 2
    assert all(len(files.read_csv(out / "trials" / t["trial"] / names.METRICS)) == 2 for t in summary["trials"])
    sampled = study(out).get_trials()
    assert len(sampled) == 4 and all(t.state == TrialState.COMPLETE for t in sampled)
    lrs = [float(r["optimizer.lr"]) for r in rows(out)]
    assert all(0.001 <= lr <= 1.0 for lr in lrs) and len(set(lrs)) == 4
    # the same seed samples the same points, interrupted or not (here: a fresh study, nothing trained)
    fresh = sweep_values(config, tmp_path / "fresh")
    assert fresh == [(float(r["optimizer.lr"]), float(r["model.l2"])) for r in rows(out)]


def sweep_values(config: Path, root: Path) -> list[tuple[float, float]]:
    """The first four points the sweep's search engine samples for `config` in an empty directory."""
    from dlrun.sweeps.plan import plan_sweep
    from dlrun.sweeps.search import Search, distribution

    plan = plan_sweep(config)
    root.mkdir()
    search = Search(plan, root)
    space = {k: distribution(v) for k, v in plan.base.config.sweep.params.items()}
    return [tuple(search.ask(f"{n:03d}", 0, space).values()) for n in range(4)]  # type: ignore[misc]


def test_tpe_search_samples_its_trials_from_the_ranges(tmp_path: Path) -> None:
    space = {"search": "tpe", "trials": 3, "params": {"optimizer.lr": {"log_uniform": [0.01, 1.0]},
                                                      "model.layers.1.dense.units": {"int": [4, 16]}}}
    config = write_config(tmp_path, deep_merge(SMALL, {"train": {"epochs": 1}}), sweep=space)
    summary = sweep(config, sweep_dir=tmp_path / "s")
    assert summary["counts"] == {"total": 3, "completed": 3} and summary["mode"] == "tpe"
    for t in summary["trials"]:
        assert 0.01 <= t["params"]["optimizer.lr"] <= 1.0 and t["params"]["model.layers.1.dense.units"] in range(4, 17)
    assert [t.state for t in study(tmp_path / "s").get_trials()] == [TrialState.COMPLETE] * 3


def tpe_start(config: Path, root: Path, counts: tuple[int, ...]) -> list[tuple[float, float]]:
    """The points a tpe sweep's search engine asks for in `root`, `counts[0]` of them, then (the sweep
    directory reopened as a resume does) `counts[1]` more, and so on; nothing trained."""
    from dlrun.sweeps.plan import plan_sweep
    from dlrun.sweeps.search import Search, distribution

    plan = plan_sweep(config)
    root.mkdir()
    space = {k: distribution(v) for k, v in plan.base.config.sweep.params.items()}
    points: list[tuple[float, float]] = []
    for count in counts:
        search = Search(plan, root)
        points += [tuple(search.ask(f"{len(points) + n:03d}", 0, space).values())  # type: ignore[misc]
                   for n in range(count)]
    return points


def test_tpe_starts_from_sobol_points_that_stratify_every_key_and_a_resume_continues_them(tmp_path: Path) -> None:
    """16 trials: the first 8 are a scrambled Sobol' sequence, so on each key's (log) scale every eighth of
    the range holds one point (8 points at random do so with probability 8!/8^8, 0.2 %, per key); a resumed
    sweep continues the sequence instead of starting it again."""
    import math

    space = {"search": "tpe", "trials": 16, "seed": 5, "params": {"optimizer.lr": {"log_uniform": [1e-4, 50.0]},
                                                                  "model.l2": {"uniform": [0.0, 0.1]}}}
    config = write_config(tmp_path, SMALL, sweep=space)
    points = tpe_start(config, tmp_path / "one", (8,))
    lr_eighths = sorted(int(8 * math.log(lr / 1e-4) / math.log(50.0 / 1e-4)) for lr, _ in points)
    l2_eighths = sorted(int(8 * l2 / 0.1) for _, l2 in points)
    assert lr_eighths == l2_eighths == list(range(8)), points
    assert tpe_start(config, tmp_path / "resumed", (3, 5)) == points


def test_a_diverged_trial_is_told_to_the_study_as_pruned_so_tpe_learns_where_training_diverges(
        tmp_path: Path) -> None:
    """TPE leaves failed trials out of its model and of its start-up count: told as failed, a diverging
    corner would be sampled again and again. A diverged trial ranks below every trial with a value."""
    space = {"params": {"optimizer.lr": [1e4, 0.1], "model.l2": [0.1]}, "prune": {"method": "asha"}}  # a study
    config = write_config(tmp_path, deep_merge(SMALL, {"train": {"epochs": 2}}), sweep=space)
    summary = sweep(config, sweep_dir=tmp_path / "s")
    status = {t["trial"]: t["status"] for t in summary["trials"]}
    states = {t.user_attrs["dlrun_trial"]: t.state for t in study(tmp_path / "s").get_trials()}
    assert sorted(status.values()) == ["completed", "diverged"], status
    assert states == {k: TrialState.PRUNED if s == "diverged" else TrialState.COMPLETE for k, s in status.items()}


# --- coarse-to-fine: a zip round, then a round around its best point ----------------------------------

def test_refine_samples_around_the_best_point_and_resumes(tmp_path: Path) -> None:
    space = {"mode": "zip", "params": {"optimizer.lr": [0.01, 0.3, 3.0], "model.l2": [0.0, 0.0, 0.0]},
             "refine": {"rounds": 1, "trials": 2}}
    config = write_config(tmp_path, deep_merge(SMALL, {"train": {"epochs": 2}}), sweep=space)
    out = tmp_path / "s"
    with pytest.raises(Interrupted):
        sweep(config, sweep_dir=out, executor=StopAfter(4))  # the coarse round and one refined trial
    before = ended(out)
    summary = sweep(None, resume=out)
    assert [(r["trial"], r["round"]) for r in rows(out)] == [("000", "0"), ("001", "0"), ("002", "0"),
                                                              ("003", "1"), ("004", "1")]
    assert {k: ended(out)[k] for k in before} == before and len(before) == 4
    coarse = [r for r in rows(out) if r["round"] == "0"]
    best = max(coarse, key=lambda r: float(r["val_accuracy"]))
    lrs = sorted(float(r["optimizer.lr"]) for r in coarse)
    i = lrs.index(float(best["optimizer.lr"]))
    low, high = lrs[max(0, i - 1)], lrs[min(len(lrs) - 1, i + 1)]
    assert all(low <= float(r["optimizer.lr"]) <= high for r in rows(out) if r["round"] == "1")
    assert len(study(out, f"{names.SWEEP_STUDY_NAME}-refine-1").get_trials()) == 2
    overall = max(rows(out), key=lambda r: (float(r["val_accuracy"]), -int(r["trial"])))
    assert summary["best"]["trial"] == overall["trial"] and (out / names.SWEEP_BEST).is_file()


def test_one_worker_process_runs_every_round_and_ends_with_the_sweep(tmp_path: Path) -> None:
    """The worker starts before the first trial (loading TensorFlow while the sweep sets up) and runs
    the refined round too: one start-up per sweep, not per round; none is left running after it."""
    space = {"mode": "zip", "params": {"optimizer.lr": [0.01, 0.3], "model.l2": [0.0, 0.0]},
             "refine": {"rounds": 1, "trials": 1}}
    config = write_config(tmp_path, deep_merge(SMALL, {"train": {"epochs": 1}}), sweep=space)
    summary = sweep(config, sweep_dir=tmp_path / "s", executor=ProcessExecutor(1))
    pids = {files.read_json(tmp_path / "s" / names.SWEEP_TRIALS / t["trial"] / names.SUMMARY)["pid"]
            for t in summary["trials"]}
    assert (len(summary["trials"]), len(pids)) == (3, 1) and os.getpid() not in pids
    assert multiprocessing.active_children() == []


def test_no_more_workers_start_than_there_are_trials(tmp_path: Path) -> None:
    from dlrun.config import load_config
    from dlrun.data import load_dataset

    cfg = load_config(write_config(tmp_path, SMALL)).config
    executor = ProcessExecutor(4)
    executor.start({"d": load_dataset(cfg.data, cfg.task)}, trials=2)
    assert len(multiprocessing.active_children()) == 2
    executor.close()  # still loading TensorFlow: stopped at once
    assert multiprocessing.active_children() == []


def test_workers_told_to_end_soon_exit_by_themselves_and_close_waits_for_them(tmp_path: Path) -> None:
    """The sweep tells its workers to end and writes its final records while they exit; `close` then
    waits: each worker exits on the message (code 0), not by a signal."""
    from dlrun.config import load_config
    from dlrun.data import load_dataset

    cfg = load_config(write_config(tmp_path, SMALL)).config
    executor = ProcessExecutor(2)
    executor.start({"d": load_dataset(cfg.data, cfg.task)}, trials=2)
    workers = list(executor._workers)
    for worker in workers:  # loaded: it holds its data sets (one still loading would be killed)
        assert worker.sender is not None
        worker.sender.join(60)
    executor.close_soon()
    assert executor._workers == [] and executor._closing == workers
    executor.close()
    assert [w.process.exitcode for w in workers] == [0, 0] and multiprocessing.active_children() == []


def test_workers_started_ahead_end_when_the_sweep_directory_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, SMALL, sweep=PRUNED_GRID)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "kept.txt").write_text("an earlier result")
    with pytest.raises(RunDirError, match="not empty"):
        sweep(config, sweep_dir=tmp_path / "s", executor=ProcessExecutor(1))
    assert multiprocessing.active_children() == []  # the worker started ahead is gone with the sweep

# --- the pruner without training: median, and a trial resumed in the middle -----------------------------

def test_median_pruner_stops_a_trial_below_the_median_of_earlier_ones(tmp_path: Path) -> None:
    from dlrun.sweeps.plan import plan_sweep
    from dlrun.sweeps.search import Search

    space = {"params": {"optimizer.lr": [0.1, 0.2, 0.3, 0.4, 0.5]}, "prune": {"method": "median"}}
    plan = plan_sweep(write_config(tmp_path, SMALL, sweep=space))
    search = Search(plan, tmp_path)
    for n, trial in enumerate(plan.trials[:3]):
        search.ask(trial.id, 0, {}, fixed=trial.params)
        assert not search.report(trial.id, 1, 0.5 + n / 10)
        search.tell(trial.id, "completed", 0.6)
    search.ask("003", 0, {}, fixed=plan.trials[3].params)
    search.ask("004", 0, {}, fixed=plan.trials[4].params)
    reopened = Search(plan, tmp_path)  # a resumed sweep: the same study, the same pruner state
    assert (reopened.report("003", 1, 0.2), reopened.report("004", 1, 0.9)) == (True, False)


@pytest.mark.slow
def test_a_pruned_sweep_killed_mid_epoch_resumes_each_trial_in_its_study_trial(tmp_path: Path) -> None:
    space = {**PRUNED_GRID, "params": {"optimizer.lr": [1.0, 0.1, 0.01, 0.001]}}
    config = write_config(tmp_path, deep_merge(SMALL, {"train": {"epochs": 4, "batch_size": 8}}), sweep=space)
    out = tmp_path / "s"
    proc = start("sweep", config, "--sweep-dir", out)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if len(ended(out) if (out / "trials").is_dir() else {}) >= 1 and _running_after_an_epoch(out):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130, proc.communicate()
    before = ended(out)
    resumed = run_cli("sweep", "--resume", out, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert {k: ended(out)[k] for k in before} == before
    trials = study(out).get_trials()
    assert sorted(t.user_attrs["dlrun_trial"] for t in trials) == [f"{n:03d}" for n in range(4)]
    for row in rows(out):
        reported = sorted(next(t for t in trials if t.user_attrs["dlrun_trial"] == row["trial"]).intermediate_values)
        assert reported == list(range(1, min(int(row["epochs_run"]), 3) + 1))
        assert len(files.read_csv(out / "trials" / row["trial"] / names.METRICS)) == int(row["epochs_run"])


def _running_after_an_epoch(out: Path) -> bool:
    for trial in (out / "trials").iterdir():
        try:
            status = json.loads((trial / names.SUMMARY).read_text())["status"]
        except (OSError, ValueError, KeyError):
            continue
        if status == "running" and (trial / names.CHECKPOINT_DIR / names.CHECKPOINT_STATE).exists():
            return True
    return False


def test_validate_and_help_load_no_optuna(tmp_path: Path) -> None:
    config = write_config(tmp_path, SMALL, sweep={"search": "tpe", "trials": 4,
                                                  "params": {"optimizer.lr": {"log_uniform": [1e-5, 10]}}})
    loaded = [modules_loaded(*args, families=("optuna",)) for args in (["sweep", "--help"], ["validate", str(config)])]
    assert loaded == [set(), set()]
