"""Trial executors: the interface and the in-process and local-process backends, and the choice
between them for `--jobs`."""

from __future__ import annotations

from typing import Any

from dlrun.sweeps.executors.base import MAX_TRIALS_PER_PROCESS, TrialExecutor, TrialResult, TrialTask
from dlrun.sweeps.executors.devices import cpu_count, gpu_devices
from dlrun.sweeps.executors.inprocess import SequentialExecutor

__all__ = ["SequentialExecutor", "TrialExecutor", "TrialResult", "TrialTask", "make_executor", "thread_setting"]


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


def thread_setting(executor: TrialExecutor, configured: int | None) -> dict[str, Any]:
    """The CPU threads each trial runs with and where that comes from (sweep console line and summary):
    `train.threads` when the config sets it (every worker honours it), else a worker's share of the
    cores, else, in this process, TensorFlow's default of every core."""
    if configured:
        return {"threads": configured, "from": "train.threads"}
    share = getattr(executor, "threads", None)
    if share:
        return {"threads": share, "from": f"{cpu_count()} cores shared by {executor.jobs} jobs"}
    return {"threads": cpu_count(), "from": "every core, TensorFlow's default"}
