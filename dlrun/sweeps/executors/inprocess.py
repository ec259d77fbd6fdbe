"""`SequentialExecutor`: trials one after another in this process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dlrun.data import Dataset
from dlrun.interrupts import StopRequest
from dlrun.sweeps.executors.base import TrialEvents, TrialTask, execute_trial, frozen_heap


class SequentialExecutor:
    """Trials one after another in this process (the Keras session is cleared between them)."""

    jobs = 1

    def run(self, tasks: Sequence[TrialTask], datasets: Mapping[str, Dataset], events: TrialEvents,
            stop: StopRequest) -> None:
        """Run `tasks` in order until done or a stop is requested."""
        if not tasks:
            return
        with frozen_heap():
            for task in tasks:
                if stop.requested:
                    return
                events.started(task)
                result = execute_trial(task, datasets[task.data_key], stop,
                                       lambda epoch, row, trial=task.trial_id: events.epoch_ended(trial, epoch, row))
                events.finished(result)
