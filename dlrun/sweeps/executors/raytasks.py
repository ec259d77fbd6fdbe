"""What runs inside the Ray cluster for `RayExecutor` (raycluster.py): the long-lived trial workers (an
actor per slot), the relay actor that carries each trial's per-epoch report to the sweep process and the
answer back (and the sweep's stop request out), and the probe that checks the sweep directory is shared.

Imported only by the Ray executor: this is where `ray` is imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ray

from dlrun.interrupts import StopRequest
from dlrun.sweeps.executors.base import (
    TrialResult,
    TrialTask,
    execute_trial,
    frozen_heap,
    peak_memory_mib,
    resident_memory_mib,
)

STOP_POLL_SECONDS = 0.5


Question = tuple[str | None, str, int, int, dict[str, Any], bytes | None]
"""A trial's report of an epoch, as the relay hands it to the sweep: (the key to answer it by, None when no
answer is awaited; the trial id; its attempt; the epoch; the epoch's metrics row; its run directory as a
bundle when it runs on its node's own storage)."""


@ray.remote(num_cpus=0)
class Relay:
    """The sweep process's line to its remote trials: reports of an epoch wait here until the sweep takes
    them, and a question (go on?) until the sweep answers; the sweep's stop request waits here until every
    trial has seen it."""

    def __init__(self) -> None:
        self.questions: list[Question] = []
        self.waiting: dict[str, asyncio.Future[bool]] = {}
        self.arrived = asyncio.Event()
        self.stopping = False
        self.count = 0

    async def ask(self, trial_id: str, attempt: int, epoch: int, row: dict[str, Any],
                  shipped: bytes | None = None) -> bool:
        """A trial's question (with its run directory as a bundle when it runs on the node's own storage);
        returns the sweep's answer (True: go on) once it comes."""
        if self.stopping:
            return True  # the trial stops anyway, after this batch
        self.count += 1
        key = f"{trial_id}/{epoch}/{self.count}"
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting[key] = future
        self.questions.append((key, trial_id, attempt, epoch, row, shipped))
        self.arrived.set()
        return await future

    async def tell(self, trial_id: str, attempt: int, epoch: int, row: dict[str, Any],
                   shipped: bytes | None = None) -> None:
        """A trial's report that awaits no answer (it cannot be pruned): queued for the sweep, returns at once."""
        self.questions.append((None, trial_id, attempt, epoch, row, shipped))
        self.arrived.set()

    async def take(self, wait_s: float) -> list[Question]:
        """The reports and questions since the last call, waiting up to `wait_s` seconds for the first."""
        if not self.questions:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), wait_s)
        self.arrived.clear()
        taken, self.questions = self.questions, []
        return taken

    async def answer(self, key: str, keep: bool) -> None:
        """The sweep's answer to question `key`."""
        future = self.waiting.pop(key, None)
        if future is not None and not future.done():
            future.set_result(keep)

    async def stop(self) -> None:
        """The sweep was asked to stop: every trial stops after its current batch and saves its state."""
        self.stopping = True
        for key in list(self.waiting):
            await self.answer(key, True)

    async def is_stopping(self) -> bool:
        """Whether the sweep asked its trials to stop."""
        return self.stopping


def _watch_stop(relay: Any, stop: StopRequest, done: threading.Event) -> None:
    """Poll the relay for the sweep's stop request (or its disappearance: the sweep is gone) until the
    trial is `done`."""
    while not stop.requested and not done.wait(STOP_POLL_SECONDS):  # a trial shorter than that asks nothing
        try:
            stopping = ray.get(relay.is_stopping.remote(), timeout=30)
        except Exception:  # the relay (so the sweep) is gone, or unreachable: stop as after a Ctrl-C
            stopping = True
        if stopping:
            stop.requested, stop.signal_name = True, "the sweep's stop request"
            return


@ray.remote(max_restarts=0, max_task_retries=0)
class TrialWorker:
    """A slot's long-lived worker: sets TensorFlow up once (threads capped to the slot's CPUs, GPU memory
    growth on), reads each data set from the object store the first time a trial needs it, and runs trial
    after trial with the reuse of a local worker (worker.py): compiled models lent between trials of one
    architecture, each trial's weights from its seed. The sweep replaces it when its memory grew
    (WORKER_GROWTH_MIB) or it died (its trial then runs again, from its checkpoint, on a fresh worker)."""

    def __init__(self, data: dict[str, Any], threads: int) -> None:
        with contextlib.suppress(ValueError):  # a terminal's Ctrl-C reaches the sweep, which tells its trials
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        from dlrun.engine import backend
        from dlrun.engine.reuse import TrialModels

        backend.own_process()
        backend.silence_native_logs()
        tf = backend.tf()
        for gpu in tf.config.list_physical_devices("GPU"):  # before any op: share the GPU Ray gave this slot
            with contextlib.suppress(RuntimeError, ValueError):
                tf.config.experimental.set_memory_growth(gpu, True)
        backend.setup(0, threads)
        self.refs, self.data = data, {}  # the object store's refs; each read once, on first use
        self.models = TrialModels()
        self.heap = frozen_heap()
        self.heap.__enter__()  # for the worker's life: clearing a session between trials scans only theirs

    def where(self) -> dict[str, Any]:
        """The Ray node this worker runs on (its id, its host), the worker (actor id, process id), and its
        resident and peak memory now, in MiB (a trial just ended: what the worker keeps between trials)."""
        context = ray.get_runtime_context()
        return {"node_id": context.get_node_id(), "host": socket.gethostname(), "actor_id": context.get_actor_id(),
                "pid": os.getpid(), "rss_mib": round(resident_memory_mib(), 1),
                "peak_mib": round(peak_memory_mib(), 1)}

    def run(self, task: TrialTask, relay: Any, sent: bytes | None, attempt: int = 1) -> Ran:
        """Run one trial (fresh, or from its checkpoint; `attempt` from 1), each epoch's report relayed to the
        sweep process: a judged trial waits for the answer and passes it to the trial's judge, any other
        goes on at once (its next report waits only for this one to be queued). `sent`: the trial's run
        directory as a bundle (shipping.py), for a trial that runs in a directory of this node's own
        (removed after); None: `task.run_dir` is on storage this node shares with the sweep. Its history
        plot is not drawn here but returned, for the sweep process to draw."""
        from dlrun.sweeps.executors import shipping
        from dlrun.ui.plots import kept_plots

        if task.data_key not in self.data:
            self.data[task.data_key] = ray.get(self.refs[task.data_key])
        local = Path(tempfile.mkdtemp(prefix=f"dlrun-trial-{task.trial_id}-")) if sent is not None else None
        if local is not None and sent is not None:
            shipping.unpack(sent, local, durable=False)  # a temporary copy: it is shipped back
            task = replace(task, run_dir=local)
        stop, done = StopRequest(), threading.Event()
        threading.Thread(target=_watch_stop, args=(relay, stop, done), daemon=True, name="dlrun-stop-watch").start()
        told = _Told()

        def judge(epoch: int, row: dict[str, Any]) -> bool:  # the epoch's checkpoint is saved: ship it first
            shipped = shipping.bundle(local) if local is not None else None
            if task.judged:
                return bool(ray.get(relay.ask.remote(task.trial_id, attempt, epoch, row, shipped)))
            told.wait()  # in order, and never more than one report on its way
            told.last = relay.tell.remote(task.trial_id, attempt, epoch, row, shipped)
            return True

        try:
            with kept_plots() as plots:
                result = execute_trial(task, self.data[task.data_key], stop, judge, self.models)
            result.peak_mib = peak_memory_mib()
            told.wait()
            return Ran(result, self.where(), shipping.bundle(local) if local is not None else None, told.count,
                       [(rows, Path(path).relative_to(task.run_dir).as_posix(), *rest) for rows, path, *rest in plots])
        finally:
            done.set()
            if local is not None:
                shutil.rmtree(local, ignore_errors=True)


@dataclass
class Ran:
    """What a worker returns of a trial: its result; where it ran (TrialWorker.where); when shipped, its whole
    run directory as a bundle (each epoch's went with its report); how many of its reports that awaited no
    answer reached the relay (the sweep handles them all before the result); and the history plots to
    draw, as `history_plot`'s arguments with the path relative to the run directory."""

    result: TrialResult
    where: dict[str, Any]
    shipped: bytes | None
    told: int
    plots: list[tuple[Any, ...]]


class _Told:
    """A trial's reports that await no answer: the last one sent, and how many reached the relay."""

    def __init__(self) -> None:
        self.last: Any = None
        self.count = 0

    def wait(self) -> None:
        """Wait until the last report sent is queued at the relay (one lost with the relay is not counted)."""
        if self.last is None:
            return
        with contextlib.suppress(ray.exceptions.RayError):
            ray.get(self.last)
            self.count += 1
        self.last = None


@ray.remote(num_cpus=0, max_retries=0)
def probe(directory: str, token: str) -> tuple[str, str]:
    """Write `token` to a file in `directory` as seen from this node; (host, the file or why not)."""
    path = Path(directory) / f".ray-probe-{token}-{socket.gethostname()}-{os.getpid()}"
    try:
        path.write_text(token)
    except OSError as exc:
        return socket.gethostname(), f"cannot write there ({exc.strerror or exc})"
    return socket.gethostname(), str(path)
