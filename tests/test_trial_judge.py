"""The line from a running trial back to the sweep process: after each complete epoch but the last, the
executor asks the sweep's `epoch_ended`; a False answer prunes the trial at that epoch boundary."""

from __future__ import annotations

from pathlib import Path

from conftest import TINY_MLP, Recorder, deep_merge, run_cli, trial_tasks

from dlrun.interrupts import StopRequest
from dlrun.store import files, names
from dlrun.store.rundir import RunDir
from dlrun.sweeps.executors import SequentialExecutor


def run_one_trial(tmp_path: Path, epochs: int, events: Recorder) -> RunDir:
    """One trial of a tiny MLP through the in-process executor, judged by `events`; its run directory."""
    tasks, datasets = trial_tasks(tmp_path, [deep_merge(TINY_MLP, {"train": {"epochs": epochs}})], first=1)
    SequentialExecutor().run(tasks, datasets, events, StopRequest())
    return RunDir(tasks[0].run_dir)


def test_a_pruned_trial_stops_at_the_epoch_and_keeps_its_records(tmp_path: Path) -> None:
    events = Recorder(prune_at=1)
    run = run_one_trial(tmp_path, 3, events)
    [result] = events.results
    assert (result.status, result.summary["pruned_epoch"], result.summary["epochs_run"]) == ("pruned", 1, 1)
    assert [(t, e) for t, e, _ in events.rows] == [("001", 1)]
    assert {"epoch", "val_loss", "val_accuracy"} <= events.rows[0][2]
    assert len(files.read_csv(run / names.METRICS)) == 1
    assert (run / names.CHECKPOINT_DIR / names.CHECKPOINT_STATE).is_file()
    assert (run / names.HISTORY_PLOT).is_file()
    assert result.summary["metrics"]["val_accuracy"] == float(files.read_csv(run / names.METRICS)[0]["val_accuracy"])


def test_a_pruned_trial_ends_at_once_without_the_final_records_of_a_finished_run(tmp_path: Path) -> None:
    """No test split, prediction timing or final weights for a candidate the sweep dropped."""
    events = Recorder(prune_at=1)
    run = run_one_trial(tmp_path, 3, events)
    summary = events.results[0].summary
    assert [k for k in summary["metrics"] if k.startswith("test_")] == []
    assert "predict_ms" not in summary
    assert not (run / names.WEIGHTS).exists() and not (run / names.MODEL).exists()


def test_evaluating_a_pruned_trial_says_it_has_no_final_weights_and_how_to_get_them(tmp_path: Path) -> None:
    events = Recorder(prune_at=1)
    run = run_one_trial(tmp_path, 3, events)
    proc = run_cli("evaluate", run.path)
    assert proc.returncode == 2, proc.stderr
    assert "pruned (at epoch 1)" in proc.stderr and f"dlrun train {run.path / names.CONFIG}" in proc.stderr


def test_the_last_epoch_is_never_judged(tmp_path: Path) -> None:
    events = Recorder()
    run_one_trial(tmp_path, 2, events)
    assert [e for _, e, _ in events.rows] == [1]
    assert events.results[0].status == "completed"


def test_a_worker_process_reports_each_epoch_of_a_trial_no_pruner_judges_without_waiting(tmp_path: Path) -> None:
    """A trial the sweep cannot prune (TrialTask.judged False) sends its epoch rows and goes on: the
    sweep process handles each, in order, before the result, but the trial does not wait for answers."""
    import time
    from dataclasses import replace

    from dlrun.sweeps.executors.processes import ProcessExecutor

    tasks, datasets = trial_tasks(tmp_path, [deep_merge(TINY_MLP, {"train": {"epochs": 3}})], first=1)
    events = Recorder(on_epoch=lambda trial, epoch: time.sleep(4))  # a sweep process slow to answer
    ProcessExecutor(jobs=1).run([replace(tasks[0], judged=False)], datasets, events, StopRequest())
    assert events.log == [("started", "001"), ("epoch", "001", 1), ("epoch", "001", 2),
                          ("finished", "001", "completed")]
    assert events.results[0].summary["seconds"] < 8  # waiting for the two answers would take 8 s at least
    assert len(files.read_csv(RunDir(tasks[0].run_dir) / names.METRICS)) == 3
