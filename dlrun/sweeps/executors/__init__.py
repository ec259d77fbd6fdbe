"""Trial executors: the interface and the in-process and local-process backends, and the choice
between them for `--jobs`."""

from __future__ import annotations

from typing import Any

from dlrun.config.scale import BackendConfig
from dlrun.sweeps.executors.base import IN_PROCESS_TRIALS, TrialExecutor, TrialResult, TrialTask
from dlrun.sweeps.executors.devices import cpu_count, gpu_devices
from dlrun.sweeps.executors.inprocess import SequentialExecutor

__all__ = ["SequentialExecutor", "TrialExecutor", "TrialResult", "TrialTask", "make_executor", "thread_setting"]


def make_executor(jobs: int | None = None, trials: int = 0, backend: BackendConfig | None = None,
                  data_bytes: int = 0) -> TrialExecutor:
    """The executor for `--jobs` (default: one per GPU where there are GPUs, else 1) and `trials`
    trials to run: a short sequential sweep (IN_PROCESS_TRIALS at most) runs in this process, anything
    longer or parallel in worker processes, which make way for fresh ones when their memory grows.
    `backend` name ray: a `RayExecutor` (connected now; `data_bytes` sizes a local instance's object store)."""
    if backend is not None and backend.name == "ray":
        from dlrun.sweeps.executors.raycluster import RayExecutor

        return RayExecutor(backend, data_bytes, jobs)
    devices = gpu_devices()
    jobs = jobs or max(1, len(devices))
    if jobs == 1 and trials <= IN_PROCESS_TRIALS:
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
    if share and getattr(executor, "threads_from", None):
        return {"threads": share, "from": executor.threads_from}  # type: ignore[attr-defined]
    if share:
        return {"threads": share, "from": f"{cpu_count()} cores shared by {executor.jobs} jobs"}
    return {"threads": cpu_count(), "from": "every core, TensorFlow's default"}
