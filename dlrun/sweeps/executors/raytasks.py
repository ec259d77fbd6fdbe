"""What runs inside the Ray cluster for `RayExecutor` (raycluster.py): each trial as a Ray task in a fresh
worker process, the relay actor that carries each trial's per-epoch report to the sweep process and the
answer back (and the sweep's stop request out), and the probe that checks the sweep directory is shared.

Imported only by the Ray executor: this is where `ray` is imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import ray

from dlrun.data import Dataset
from dlrun.interrupts import StopRequest
from dlrun.sweeps.executors.base import TrialResult, TrialTask, execute_trial

STOP_POLL_SECONDS = 0.5


@ray.remote(num_cpus=0)
class Relay:
    """The sweep process's line to its remote trials: questions (a trial finished an epoch: go on?) wait
    here until the sweep answers; the sweep's stop request waits here until every trial has seen it."""

    def __init__(self) -> None:
        self.questions: list[tuple[str, str, int, dict[str, Any]]] = []
        self.waiting: dict[str, asyncio.Future[bool]] = {}
        self.arrived = asyncio.Event()
        self.stopping = False
        self.count = 0

    async def ask(self, trial_id: str, epoch: int, row: dict[str, Any]) -> bool:
        """A trial's question; returns the sweep's answer (True: go on) once it comes."""
        if self.stopping:
            return True  # the trial stops anyway, after this batch
        self.count += 1
        key = f"{trial_id}/{epoch}/{self.count}"
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting[key] = future
        self.questions.append((key, trial_id, epoch, row))
        self.arrived.set()
        return await future

    async def take(self, wait_s: float) -> list[tuple[str, str, int, dict[str, Any]]]:
        """The questions asked since the last call, waiting up to `wait_s` seconds for the first."""
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


def _watch_stop(relay: Any, stop: StopRequest) -> None:
    """Poll the relay for the sweep's stop request (or its disappearance: the sweep is gone)."""
    while not stop.requested:
        try:
            stopping = ray.get(relay.is_stopping.remote(), timeout=30)
        except Exception:  # the relay (so the sweep) is gone, or unreachable: stop as after a Ctrl-C
            stopping = True
        if stopping:
            stop.requested, stop.signal_name = True, "the sweep's stop request"
            return
        threading.Event().wait(STOP_POLL_SECONDS)


@ray.remote(max_calls=1)  # a fresh worker process per trial: its memory (and GPU memory) goes with it
def run_trial(task: TrialTask, data: Dataset, threads: int, relay: Any) -> TrialResult:
    """One trial in this Ray worker: TensorFlow's threads capped to the trial's CPUs (its GPUs are the
    ones Ray put in CUDA_VISIBLE_DEVICES), each epoch's report relayed to the sweep process and its answer
    passed to the trial's judge; resumes from the trial's checkpoint when Ray runs it again."""
    stop = StopRequest()
    with contextlib.suppress(ValueError):  # a terminal's Ctrl-C reaches the sweep, which tells its trials
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_stop, args=(relay, stop), daemon=True, name="dlrun-stop-watch").start()
    from dlrun.engine import backend

    backend.silence_native_logs()
    backend.setup(0, threads)

    def judge(epoch: int, row: dict[str, Any]) -> bool:
        return bool(ray.get(relay.ask.remote(task.trial_id, epoch, row)))

    return execute_trial(task, data, stop, judge)


@ray.remote(num_cpus=0, max_retries=0)
def probe(directory: str, token: str) -> tuple[str, str]:
    """Write `token` to a file in `directory` as seen from this node; (host, the file or why not)."""
    path = Path(directory) / f".ray-probe-{token}-{socket.gethostname()}-{os.getpid()}"
    try:
        path.write_text(token)
    except OSError as exc:
        return socket.gethostname(), f"cannot write there ({exc.strerror or exc})"
    return socket.gethostname(), str(path)
