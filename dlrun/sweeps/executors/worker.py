"""The worker side of `ProcessExecutor` (processes.py): a spawned process that sets up TensorFlow once,
reads the sweep's data sets, then runs each trial it is sent, relaying every epoch's row to the sweep
for its verdict (go on, or prune). It stops after the current batch on SIGTERM, and on its own when
the sweep process is gone, so an orphan never races a resumed sweep.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

from dlrun.data import Dataset
from dlrun.errors import DataError
from dlrun.interrupts import StopRequest
from dlrun.store.rundir import RunDir
from dlrun.store.status import mark_failed, read_status
from dlrun.sweeps.executors.base import TrialResult, TrialTask, execute_trial, frozen_heap, peak_memory_mib
from dlrun.ui.plots import drawn_in_background


@dataclass(frozen=True)
class EpochReport:
    """A worker's message after a trial's epoch: the sweep answers True (go on) or False (prune)."""

    trial_id: str
    epoch: int
    row: dict[str, Any]


def _watch_parent(parent_pid: int, stop: StopRequest) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    stop.requested = True  # the sweep is gone: stop after this batch, like a Ctrl-C


def worker_main(conn: Connection, threads: int, device: str | None, parent_pid: int) -> None:
    """A worker process: set up TensorFlow once, read the data sets, then run each trial it is sent
    until told to stop."""
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device  # before TensorFlow is imported
    os.dup2(2, 1)  # the sweep's stdout is its own (--json prints one object there); workers use stderr
    stop = StopRequest()

    def on_term(signum: int, frame: FrameType | None) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested, stop.signal_name = True, "SIGTERM"

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, on_term)
    threading.Thread(target=_watch_parent, args=(parent_pid, stop), daemon=True).start()
    from dlrun.engine import backend

    backend.own_process()
    backend.silence_native_logs()
    backend.setup(0, threads)
    try:
        datasets: dict[str, Dataset] | DataError = conn.recv()
    except (EOFError, OSError):
        backend.exit_now(0)  # the sweep ended before sending them (a config or disk error): nothing to run
    except DataError as exc:  # a mapped cache entry gone from under the sweep (mapped.reopen): trials fail saying so
        datasets = exc
    with frozen_heap(), drawn_in_background():  # the next trial need not wait for a plot
        _serve(conn, datasets, stop, parent_pid)
    backend.exit_now(0)  # every trial's files are written (plots too): skip TensorFlow's ~1 s teardown


def _judge(conn: Connection, task: TrialTask, parent_pid: int) -> Callable[[int, dict[str, Any]], bool]:
    """Report each epoch to the sweep process; a trial the sweep may prune (task.judged) waits for the
    verdict, any other goes on at once (every verdict would be "go on"). A sweep that is gone cannot prune
    (the trial goes on and stops through the parent watch like after a Ctrl-C)."""
    def judge(epoch: int, row: dict[str, Any]) -> bool:
        try:
            conn.send(EpochReport(task.trial_id, epoch, dict(row)))
            if not task.judged:
                return True
            while not conn.poll(0.5):
                if os.getppid() != parent_pid:
                    return True
            return bool(conn.recv())
        except (EOFError, OSError):
            return True
    return judge


def _serve(conn: Connection, datasets: dict[str, Dataset] | DataError, stop: StopRequest, parent_pid: int) -> None:
    """Run each trial sent on `conn` and send back its result, until told to stop."""
    from dlrun.engine.reuse import TrialModels

    models = TrialModels()  # this worker's compiled models, lent to its next trials
    while not stop.requested:
        if not conn.poll(0.5):
            continue
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        if isinstance(datasets, DataError):
            conn.send(TrialResult(task.trial_id, "failed", mark_failed(RunDir(task.run_dir), str(datasets))))
            continue
        try:
            result = execute_trial(task, datasets[task.data_key], stop, _judge(conn, task, parent_pid),
                                   models)
        except KeyboardInterrupt:
            result = TrialResult(task.trial_id, "interrupted", read_status(RunDir(task.run_dir))[1])
        result.peak_mib = peak_memory_mib()
        try:
            conn.send(result)
        except OSError:
            return
