"""Trial executors: the interface and the in-process and local-process backends, and the choice
between them for `--jobs`."""

from __future__ import annotations

from dlrun.sweeps.executors.base import MAX_TRIALS_PER_PROCESS, TrialExecutor, TrialResult, TrialTask
from dlrun.sweeps.executors.devices import gpu_devices
from dlrun.sweeps.executors.inprocess import SequentialExecutor

__all__ = ["SequentialExecutor", "TrialExecutor", "TrialResult", "TrialTask", "make_executor"]


def make_executor(jobs: int | None = None, trials: int = 0) -> TrialExecutor:
    """The executor for `--jobs` (default: one per GPU where there are GPUs, else 1) and `trials`
    trials to run. No process runs more than MAX_TRIALS_PER_PROCESS trials, so memory stays flat:
    a short sequential sweep runs in this process, anything longer or parallel in workers."""
    devices = gpu_devices()
    jobs = jobs or max(1, len(devices))
    if jobs == 1 and trials <= MAX_TRIALS_PER_PROCESS:
        return SequentialExecutor()
    from dlrun.sweeps.executors.processes import ProcessExecutor

    return ProcessExecutor(jobs, devices=devices or None)
