"""`SequentialExecutor`: trials one after another in this process."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from dlrun.data import Dataset
from dlrun.interrupts import StopRequest
from dlrun.sweeps.executors.base import TrialEvents, TrialTask, execute_trial, frozen_heap
from dlrun.ui.plots import drawn_in_background

if TYPE_CHECKING:
    from dlrun.engine.reuse import TrialModels


class SequentialExecutor:
    """Trials one after another in this process (the Keras session is cleared between them)."""

    jobs = 1
    models: TrialModels | None = None  # the compiled models its trials borrow, kept across a sweep's rounds

    def run(self, tasks: Iterable[TrialTask], datasets: Mapping[str, Dataset], events: TrialEvents,
            stop: StopRequest) -> None:
        """Run `tasks` in order until done or a stop is requested. `tasks` may be lazy: the next one is
        pulled only after the previous trial's result was delivered."""
        source = iter(tasks)
        task = None if stop.requested else next(source, None)
        if task is None:
            return
        from dlrun.engine.reuse import TrialModels

        models = self.models = self.models or TrialModels()  # kept across the rounds of a sweep
        with frozen_heap(), drawn_in_background():  # the next trial need not wait for a plot
            while task is not None:
                events.started(task)
                result = execute_trial(task, datasets[task.data_key], stop,
                                       lambda epoch, row, trial=task.trial_id: events.epoch_ended(trial, epoch, row),
                                       models)
                events.finished(result)
                task = None if stop.requested else next(source, None)
