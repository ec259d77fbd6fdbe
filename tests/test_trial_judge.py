"""The line from a running trial back to the sweep process: after each complete epoch but the last, the
executor asks the sweep's `epoch_ended`; a False answer prunes the trial at that epoch boundary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import TINY_MLP, deep_merge, write_config

from dlrun.config import dump_config, load_config
from dlrun.data import load_dataset
from dlrun.interrupts import StopRequest
from dlrun.store import files, names
from dlrun.store.rundir import RunDir, create_run_dir
from dlrun.sweeps.executors import SequentialExecutor, TrialResult, TrialTask


class PruneAt:
    """Events that prune every trial at `epoch` and remember what was reported."""

    def __init__(self, epoch: int):
        self.epoch, self.reports, self.results = epoch, [], []

    def started(self, task: TrialTask) -> None:
        pass

    def epoch_ended(self, trial_id: str, epoch: int, row: dict[str, Any]) -> bool:
        self.reports.append((trial_id, epoch, set(row)))
        return epoch < self.epoch

    def finished(self, result: TrialResult) -> None:
        self.results.append(result)


def run_one_trial(tmp_path: Path, epochs: int, events: PruneAt) -> RunDir:
    """One trial of a tiny MLP through the in-process executor, judged by `events`; its run directory."""
    lc = load_config(write_config(tmp_path, deep_merge(TINY_MLP, {"train": {"epochs": epochs}})))
    run = create_run_dir("001", explicit=tmp_path / "trials" / "001")
    files.write_text(run / names.CONFIG, dump_config(lc.config))
    data = load_dataset(lc.config.data, lc.config.task)
    SequentialExecutor().run([TrialTask("001", run.path, "d")], {"d": data}, events, StopRequest())
    return run


def test_a_pruned_trial_stops_at_the_epoch_and_keeps_its_records(tmp_path: Path) -> None:
    events = PruneAt(epoch=1)
    run = run_one_trial(tmp_path, 3, events)
    [result] = events.results
    assert (result.status, result.summary["pruned_epoch"], result.summary["epochs_run"]) == ("pruned", 1, 1)
    assert [(t, e) for t, e, _ in events.reports] == [("001", 1)]
    assert {"epoch", "val_loss", "val_accuracy"} <= events.reports[0][2]
    assert len(files.read_csv(run / names.METRICS)) == 1
    assert (run / names.CHECKPOINT_DIR / names.CHECKPOINT_STATE).is_file()
    assert (run / names.HISTORY_PLOT).is_file() and (run / names.WEIGHTS).is_file()


def test_the_last_epoch_is_never_judged(tmp_path: Path) -> None:
    events = PruneAt(epoch=99)
    run_one_trial(tmp_path, 2, events)
    assert [e for _, e, _ in events.reports] == [1]
    assert events.results[0].status == "completed"
