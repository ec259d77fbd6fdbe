"""How trials run, behind one small interface: a `TrialExecutor` takes trial tasks and reports each
start and result. `SequentialExecutor` (inprocess.py) runs them in this process, `ProcessExecutor`
(processes.py) in local worker processes. Another backend (a distributed engine) implements the
same `run` and calls `execute_trial` wherever a trial lands; nothing else changes.

Importing this module does not load TensorFlow; running a trial does.
"""

from __future__ import annotations

import contextlib
import gc
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dlrun.data import Dataset
from dlrun.errors import Interrupted
from dlrun.interrupts import StopRequest
from dlrun.store import files, names
from dlrun.store.files import storage_problem
from dlrun.store.lock import run_lock
from dlrun.store.rundir import RunDir
from dlrun.store.status import FINAL_STATUSES, mark_failed, read_status

if TYPE_CHECKING:
    from dlrun.engine.reuse import TrialModels

IN_PROCESS_TRIALS = 16
"""A sequential sweep of at most this many trials runs in the sweep's own process; a longer one runs
in a worker process, which can be replaced when its memory grows (WORKER_GROWTH_MIB)."""

WORKER_GROWTH_MIB = 512
"""A worker process is replaced once its peak resident memory has grown this much since its first trial:
Keras keeps a few MiB per new model even after clear_session (keras-team/keras#17458), so a sweep of
many architectures would grow without bound. Measured on the MNIST 8 x 8 grid (one architecture, lent
models): ~180 MiB of warm-up over the first completed trials (evaluation, saving), then ~3 MiB a trial;
256 replaced the worker after 40 trials, each replacement costing TensorFlow's start-up and the first
trace again (~5 s). Trials that share a compiled model (engine/reuse.py) grow slowly, and their worker is
kept as long as it can be."""


def peak_memory_mib() -> float:
    """This process' peak resident memory so far, in MiB."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def resident_memory_mib() -> float:
    """This process' resident memory now, in MiB (its peak where /proc is not there to read)."""
    import os

    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, IndexError, ValueError):
        return peak_memory_mib()
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def outgrown(first_peak: float | None, peak_mib: float | None, growth_mib: float) -> tuple[float | None, bool]:
    """The rule that replaces a worker, a local process or a Ray actor alike: once its peak memory after a
    trial (`peak_mib`) is more than `growth_mib` above its peak after its first trial (`first_peak`, None
    before that trial ended). Returns the first peak to keep and whether a fresh worker takes its place."""
    first = peak_mib if first_peak is None else first_peak
    return first, (peak_mib or 0.0) - (first or 0.0) > growth_mib


@dataclass(frozen=True)
class TrialTask:
    """One trial to run: its id, its run directory (config.yaml already written), its data set key, the
    CPU threads the config asks for (train.threads; None: the executor's share), and whether the sweep may
    prune it (`judged`: a pruner is on, so the trial waits for the verdict after each epoch; False: every
    verdict is "go on", and an executor may report the epoch without waiting for it)."""

    trial_id: str
    run_dir: Path
    data_key: str
    threads: int | None = None
    judged: bool = True


@dataclass
class TrialResult:
    """What became of a trial: status (completed, diverged, pruned, failed, interrupted) and its summary."""

    trial_id: str
    status: str
    summary: dict[str, Any] = field(default_factory=dict)
    storage: str | None = None  # set when a full or read-only disk stopped the trial (resumable)
    peak_mib: float | None = None  # a worker process' peak memory after the trial (see WORKER_GROWTH_MIB)


class TrialEvents(Protocol):
    """Callbacks an executor makes, always from the thread that called `run` (the sweep process decides,
    wherever the trial runs)."""

    def started(self, task: TrialTask) -> None: ...

    def epoch_ended(self, trial_id: str, epoch: int, row: dict[str, Any]) -> bool:
        """Trial `trial_id` completed epoch `epoch` (1-based; `row` is its metrics.csv row) and saved its
        checkpoint. Return False to prune it: it stops there with status `pruned`. Not called for a trial's
        last epoch. The trial waits for the answer, so an executor must relay it promptly."""
        ...

    def finished(self, result: TrialResult) -> None: ...


class TrialExecutor(Protocol):
    """Runs trials; returns when every task has a result or after a stop request (once the trials
    in flight have saved their state). A trial's outcome never depends on the executor.

    `tasks` may be lazy (a generator asking the search engine for the next trial): an executor pulls
    the next task with next() only when a slot is free, and only after delivering `finished` for the
    trials that ended; it never calls len() on it. Exhausted: no more trials."""

    jobs: int

    def run(self, tasks: Iterable[TrialTask], datasets: Mapping[str, Dataset], events: TrialEvents,
            stop: StopRequest) -> None: ...


def execute_trial(task: TrialTask, data: Dataset, stop: StopRequest,
                  judge: Callable[[int, dict[str, Any]], bool] | None = None,
                  models: TrialModels | None = None) -> TrialResult:
    """Run one trial in this process: fresh, or from its last checkpoint; a trial that already
    ended (completed, diverged, pruned, failed) is returned as it is and never runs again. `judge`
    (epoch, row) -> keep going is asked after each complete epoch but the last (see
    `TrialEvents.epoch_ended`): the executor's line back to the sweep process.

    `models` (an engine.reuse.TrialModels, kept by the executor for the trials of one process) lends a
    fresh trial a compiled model of the same architecture, in the trial's exact initial state, and the
    training, validation and test streams an earlier trial built; without it the trial builds its own.

    Divergence is a result; any other exception marks the trial `failed` with its message, and its
    traceback is kept in the trial's error.txt.
    """
    from dlrun.config import load_config
    from dlrun.engine.reuse import TrialModels
    from dlrun.engine.run import run_training
    from dlrun.ui.console import Reporter

    run = RunDir(task.run_dir)
    with run_lock(run.path, lambda: stop.requested) as locked:
        status, summary = read_status(run)
        if not locked:
            return TrialResult(task.trial_id, "interrupted", summary)
        if status in FINAL_STATUSES:
            return TrialResult(task.trial_id, str(status), summary)
        checkpoint = run.checkpoint / names.CHECKPOINT_STATE
        try:
            lc = load_config(run / names.CONFIG)
            resume = checkpoint if checkpoint.exists() else None
            models = models or TrialModels(kept=0)
            summary = run_training(lc, run, data, Reporter(json_mode=True, live=False), stop, resume,
                                   model=models.model(lc, data, reusable=resume is None), judge=judge,
                                   streams=models.streams)
            return TrialResult(task.trial_id, summary["status"], summary)
        except Interrupted:
            return TrialResult(task.trial_id, "interrupted", read_status(run)[1])
        except Exception as exc:
            if storage_problem(exc):  # not the trial's fault: it stays resumable, and the sweep stops
                where = f"{storage_problem(exc)} (writing {getattr(exc, 'filename', None) or run.path})"
                return TrialResult(task.trial_id, "interrupted", read_status(run)[1], storage=where)
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            files.write_text(run / names.ERROR, traceback.format_exc())
            return TrialResult(task.trial_id, "failed", mark_failed(run, message))


def lost_trial(task: TrialTask, resumable: bool, message: str, detail: str) -> TrialResult:
    """The result of a trial whose worker ended without reporting one, from what its run directory says:
    the status it reached when that is final; `interrupted` when `resumable` (the sweep is stopping, or
    the worker was killed: `--resume` continues from the last checkpoint); else `failed` with `message`,
    and `message` and `detail` in its error.txt."""
    run = RunDir(task.run_dir)
    status, summary = read_status(run)
    if status in FINAL_STATUSES:
        return TrialResult(task.trial_id, str(status), summary)
    if resumable:
        return TrialResult(task.trial_id, "interrupted", summary)
    files.write_text(run / names.ERROR, f"{message}{detail}\n")
    return TrialResult(task.trial_id, "failed", mark_failed(run, message))


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Load TensorFlow, then exempt every object alive now (its ~300k, created once) from the cyclic
    garbage collector while trials run: clearing the session between trials then scans only what the
    trials created (~0.2 s less per trial), and memory is still freed. Undone afterwards."""
    from dlrun.engine import backend

    backend.keras()
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
