"""`ProcessExecutor`: trials in local worker processes, N at a time, each worker with its CPU
threads limited (cores // N) or pinned to one GPU, so the jobs do not fight over the machine.

Workers are spawned (never forked: TensorFlow is not fork-safe; their side is worker.py), receive the
data sets once when they start, and then run one trial per message. Arrays in memory are sent as copies
(pickled once for all workers); a memory-mapped cache entry's arrays are sent as a reference to the
entry's file, which each worker maps: every worker reads the one file through the page cache. After
each epoch a trial sends its metrics row back over the same pipe and waits for the sweep's answer (keep
going, or prune). Ctrl-C reaches the sweep only; it forwards a SIGTERM, each worker stops its trial after
the current batch, saves its state and reports.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from dlrun.data import Dataset
from dlrun.interrupts import StopRequest
from dlrun.sweeps.executors.base import (
    WORKER_GROWTH_MIB,
    TrialEvents,
    TrialResult,
    TrialTask,
    lost_trial,
    outgrown,
)
from dlrun.sweeps.executors.devices import cpu_count
from dlrun.sweeps.executors.pipes import receive, send_after, send_data, serialized
from dlrun.sweeps.executors.worker import EpochReport, worker_main

SHUTDOWN_SECONDS = 30.0


@dataclass
class _Worker:
    process: Any  # multiprocessing.Process (spawn context)
    conn: Connection
    task: TrialTask | None = None
    first_peak: float | None = None  # MiB, after its first trial
    sender: threading.Thread | None = None  # sends the data sets, then what was sent before they went

    def send(self, message: Any) -> None:
        """Send a message after the data sets (the worker reads them first), without waiting for a worker
        that is still loading: the sweep goes on serving the others meanwhile."""
        if self.sender is None or not self.sender.is_alive():
            self.sender = None
            self.conn.send(message)
            return
        self.sender = threading.Thread(target=send_after, args=(self.sender, self.conn, message), daemon=True)
        self.sender.start()

    def close(self) -> None:
        """Close the sweep's end of the pipe, once a send in flight has ended (the worker is gone)."""
        if self.sender is not None:
            self.sender.join(SHUTDOWN_SECONDS)
        with contextlib.suppress(OSError):
            self.conn.close()


class ProcessExecutor:
    """Up to `jobs` trials at once in worker processes, `threads` CPU threads each. A worker is
    replaced once its peak memory grew `growth_mib` since its first trial (see WORKER_GROWTH_MIB): a
    fresh process is what keeps memory flat in long sweeps of many architectures, and a kept one lends
    its compiled models to the next trials."""

    def __init__(self, jobs: int, threads: int | None = None, devices: list[str] | None = None,
                 growth_mib: float = WORKER_GROWTH_MIB):
        self.jobs, self.growth_mib = jobs, growth_mib
        self.threads = threads or max(1, cpu_count() // jobs)
        self.devices = devices
        self._ctx = multiprocessing.get_context("spawn")
        self._datasets: dict[str, Dataset] = {}
        self._threads = self.threads
        self._workers: list[_Worker] = []  # started ahead by start(): kept across run() calls until close()
        self._retired: list[_Worker] = []
        self._closing: list[_Worker] = []  # told to end by close_soon(), joined by close()

    def start(self, datasets: Mapping[str, Dataset], threads: int | None = None, trials: int | None = None) -> None:
        """Start the worker processes now, before the trials are ready: each imports TensorFlow (~3 s)
        while the sweep writes its directory and opens its study, and the same workers run every later
        `run` (a sweep's rounds) until `close`. `threads`: the config's train.threads, when set;
        `trials`: how many trials there are to run (no more workers than that are started)."""
        self._adopt(datasets, threads)
        wanted = self.jobs if trials is None else min(self.jobs, max(1, trials))
        payload = serialized(self._datasets) if len(self._workers) < wanted else None  # one copy for all of them
        while len(self._workers) < wanted:
            self._workers.append(self._start(len(self._workers), payload))

    def close(self) -> None:
        """End the workers `start` started (they finish nothing: run() returns only when they are idle) and
        wait until they have exited."""
        self.close_soon()
        self._join(self._closing)
        self._closing = []

    def close_soon(self) -> None:
        """Tell the workers to end without waiting for them: a worker still draws its last trial's plot and
        exits (~0.5 s), which the sweep spends on its final records meanwhile; `close` waits for them."""
        self._ask_to_end(self._workers)
        self._closing += self._workers
        self._workers = []

    def _adopt(self, datasets: Mapping[str, Dataset], threads: int | None) -> None:
        """Workers hold their data sets and thread count from their start: other ones need fresh workers."""
        threads = threads or self.threads
        same = datasets.keys() == self._datasets.keys() and all(datasets[k] is self._datasets[k] for k in datasets)
        if self._workers and (not same or threads != self._threads):
            self.close()
        self._datasets, self._threads = dict(datasets), threads

    def run(self, tasks: Iterable[TrialTask], datasets: Mapping[str, Dataset], events: TrialEvents,
            stop: StopRequest) -> None:
        """Run `tasks` on worker processes until done or a stop is requested. `tasks` may be lazy: the
        next one is pulled when a worker is free, after the results that came in were delivered.
        Workers from `start` stay up for the next call (after a stop, they are ended); without it, the
        workers this call starts end with it."""
        source = iter(tasks)
        first = None if stop.requested else next(source, None)
        if first is None:
            return
        # the config's train.threads, when set, is what every worker runs with (it cannot vary by trial)
        self._adopt(datasets, first.threads)
        kept = bool(self._workers)  # started ahead: they stay for the next call
        self._source, self._ahead, self._exhausted = source, first, False
        workers = self._workers  # replaced and added in place
        signalled = 0
        ended = False
        try:
            while not self._exhausted or any(w.task for w in workers):
                try:
                    if stop.requested and not signalled:
                        self._exhausted = True
                        signalled = self._signal(workers, signalled)
                    self._dispatch(workers, events)
                    self._collect(workers, events, bool(signalled), not self._exhausted)
                except KeyboardInterrupt:  # a second Ctrl-C: workers stop at once
                    stop.requested = self._exhausted = True
                    signalled = self._signal(workers, max(signalled, 1))
            ended = True
        finally:
            if not (kept and ended and not stop.requested):
                self.close()

    def _pull(self) -> TrialTask | None:
        """The next task, or None (and no more) when the iterable is exhausted."""
        if self._exhausted:
            return None
        task, self._ahead = self._ahead or next(self._source, None), None
        self._exhausted = task is None
        return task

    def _start(self, index: int, payload: Any = None) -> _Worker:
        """A fresh worker process; `payload`: the data sets already pickled (else pickled now)."""
        parent_conn, child_conn = self._ctx.Pipe()
        device = self.devices[index % len(self.devices)] if self.devices else None
        process = self._ctx.Process(target=worker_main, name=f"dlrun-trial-worker-{index}", daemon=True,
                                    args=(child_conn, self._threads, device, os.getpid()))
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited: Ctrl-C goes to the sweep only
        try:
            process.start()
        finally:
            signal.signal(signal.SIGINT, previous)
        child_conn.close()
        # The worker reads its data sets once TensorFlow is loaded; until then a pipe takes 64 KiB, so
        # a thread waits to send them and the sweep goes on (passed to Process, they would hold it up).
        # The pickled copy lives as long as some thread still sends it.
        payload = serialized(self._datasets) if payload is None else payload
        sender = threading.Thread(target=send_data, args=(parent_conn, payload), daemon=True)
        sender.start()
        return _Worker(process, parent_conn, sender=sender)

    def _dispatch(self, workers: list[_Worker], events: TrialEvents) -> None:
        self._reap()
        for index in range(self.jobs):
            if index < len(workers) and workers[index].task is not None:
                continue
            task = self._pull()
            if task is None:
                return
            if index == len(workers):
                workers.append(self._start(index))
            elif not workers[index].process.is_alive():
                workers[index] = self._start(index)
            workers[index].send(task)
            workers[index].task = task
            events.started(task)

    def _collect(self, workers: list[_Worker], events: TrialEvents, stopping: bool, more: bool) -> None:
        busy = [w for w in workers if w.task is not None]
        ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=0.5)
        for index, worker in enumerate(workers):
            if worker.task is None or (worker.conn not in ready and worker.process.sentinel not in ready):
                continue
            result = receive(worker.conn)
            if isinstance(result, EpochReport):  # a judged trial waits for the sweep's verdict
                keep = events.epoch_ended(result.trial_id, result.epoch, result.row)
                if worker.task.judged:
                    with contextlib.suppress(OSError):
                        worker.conn.send(keep)
                continue
            if result is None:  # the worker died in the middle of a trial (killed, out of memory)
                result = _lost(worker, stopping)
                worker.close()
                if more and not stopping:
                    workers[index] = self._start(index)
            worker.task = None
            if worker.process.is_alive() and self._spent(worker, result) and more and not stopping:
                with contextlib.suppress(OSError):
                    worker.send(None)  # it exits; a fresh process takes its place
                self._retired.append(worker)
                workers[index] = self._start(index)
            events.finished(result)

    def _reap(self) -> None:
        """Release replaced workers that have exited (their process handle and pipe)."""
        for worker in [w for w in self._retired if not w.process.is_alive()]:
            worker.process.join(0)
            worker.close()
            worker.process.close()
            self._retired.remove(worker)

    def _spent(self, worker: _Worker, result: TrialResult) -> bool:
        """Whether `worker` should make way for a fresh process (its memory grew)."""
        worker.first_peak, spent = outgrown(worker.first_peak, result.peak_mib, self.growth_mib)
        return spent

    def _signal(self, workers: list[_Worker], count: int) -> int:
        """SIGTERM every busy worker: the first asks for a stop after the batch, the second is immediate."""
        for worker in workers:
            if worker.task is not None and worker.process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.process.pid, signal.SIGTERM)
        return count + 1

    @staticmethod
    def _ask_to_end(workers: list[_Worker]) -> None:
        for worker in workers:
            if worker.sender is not None and worker.sender.is_alive():
                worker.process.kill()  # still loading TensorFlow, no data yet: nothing of it to finish or keep
            with contextlib.suppress(OSError):
                worker.send(None)

    def _join(self, workers: list[_Worker]) -> None:
        """Wait for `workers` (told to end) and the retired ones to exit; terminate any that outstay the limit."""
        deadline = time.monotonic() + SHUTDOWN_SECONDS
        for worker in [*self._retired, *workers]:
            worker.process.join(max(0.1, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(5)
            worker.close()
        self._retired = []


def _lost(worker: _Worker, stopping: bool) -> TrialResult:
    """The result of a trial whose worker exited without reporting (its summary says how far it got).

    A worker killed by a signal (SIGKILL, the out-of-memory killer) leaves its trial resumable, as a
    killed `dlrun train` leaves its run: the sweep goes on with the others and ends `interrupted`, and
    `--resume` continues that trial from its last checkpoint. A worker that exited by itself without
    a word is a bug: the trial is `failed`."""
    assert worker.task is not None
    worker.process.join(5)
    code = worker.process.exitcode
    return lost_trial(worker.task, stopping or (code is not None and code < 0),
                      f"worker process died (exit code {code}) while running the trial",
                      " (it exited without reporting: no traceback)")
