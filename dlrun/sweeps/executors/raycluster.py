"""`RayExecutor`: a sweep's trials as Ray tasks, on a local Ray instance or a Ray cluster.

The sweep process stays the driver: it prepares the data once and puts it in Ray's object store, starts
the worker actors (one per slot: the CPUs and GPUs a trial reserves) ahead of the trials, hands a trial
to a slot's worker only when the slot is free, receives each trial's per-epoch report
(`TrialEvents.epoch_ended`) through a relay actor on its own node (a trial a pruner judges waits for the
answer; any other trains on), draws the trials' history plots, and writes the sweep's records. A worker
actor lives for the sweep and lends its compiled models to its next trials, as a local worker does, and
is replaced by the local workers' rule once its memory grew (base.outgrown). Each trial writes its run
directory on its node, shipped back here (storage: ship), or under the sweep directory (resolved here)
that every node sees (storage: shared, checked at start). A worker or node that dies costs its trial one
more attempt, from its last checkpoint, on a fresh worker (up to `max_retries` more).

Importing this module loads Ray (never TensorFlow); only `--backend ray` imports it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlrun.config.scale import BackendConfig
from dlrun.data import Dataset
from dlrun.errors import SweepError
from dlrun.interrupts import StopRequest
from dlrun.sweeps.executors import shipping
from dlrun.sweeps.executors.base import (
    WORKER_GROWTH_MIB,
    TrialEvents,
    TrialResult,
    TrialTask,
    lost_trial,
    outgrown,
)
from dlrun.sweeps.executors.rayconnect import check_shared_storage, connect, on_this_node
from dlrun.sweeps.executors.rayconnect import ray_module as _ray
from dlrun.ui.plots import drawn_in_background, history_plot

if TYPE_CHECKING:
    from dlrun.sweeps.executors.raytasks import Question

RELAY_WAIT_SECONDS = 0.5


@dataclass
class _Slot:
    """One slot's worker actor and the trial it runs (with that trial's attempt, from 1)."""

    actor: Any = None
    task: TrialTask | None = None
    attempt: int = 0
    first_peak: float | None = None  # MiB, after the worker's first trial


class RayExecutor:
    """Trials on Ray: at most `jobs` at once (the cluster's CPUs and GPUs over what a trial reserves, capped
    by --jobs), each slot a long-lived worker actor with its threads capped to its CPUs."""

    def __init__(self, settings: BackendConfig, data_bytes: int = 0, jobs: int | None = None,
                 growth_mib: float = WORKER_GROWTH_MIB):
        self.settings, self.cpus, self.growth_mib = settings, settings.cpus_per_trial, growth_mib
        self.threads = self.cpus
        self._closing: threading.Thread | None = None  # disconnecting, after `close_soon`
        self._owned = connect(settings.address, data_bytes)
        self._data: dict[str, Any] | None = None  # the sweep's data sets in the object store, put by the first round
        self._relay: Any = None  # the round's relay actor (the first one started by `start`)
        self._question: Any = None  # the relay's next reports and questions (a pending `take`)
        self._probed = False  # the storage probe ran (storage: shared)
        self._attempts: dict[str, int] = {}  # each trial's attempts in this round
        self._told: dict[tuple[str, int], int] = {}  # (trial, attempt) -> its reports handled that awaited no answer
        self._slots: list[_Slot] = []
        self._run_dirs: dict[str, Path] = {}  # each trial's run directory here (shipped ones are written to it)
        self._bytes: dict[str, list[int]] = {}  # each trial's bytes sent to its nodes and shipped back
        resources = _ray().cluster_resources()
        gpus = settings.gpus_per_trial
        self.gpus = float(gpus) if gpus is not None else (1.0 if resources.get("GPU", 0) >= 1 else 0.0)
        slots = int(resources.get("CPU", 1) // self.cpus)
        if self.gpus:
            slots = min(slots, int(resources.get("GPU", 0) // self.gpus))
        if slots < 1:
            self.close()
            raise SweepError(f"a trial asks for {self.cpus} CPU(s) and {self.gpus:g} GPU(s) but the Ray cluster has "
                             f"{resources.get('CPU', 0):g} CPU(s) and {resources.get('GPU', 0):g} GPU(s); lower "
                             "--cpus-per-trial / --gpus-per-trial or add nodes")
        self.jobs = min(slots, jobs) if jobs else slots
        self.threads_from = f"{self.cpus} CPU(s) per trial on Ray, {self.jobs} trials at once"

    def close(self) -> None:
        """End the worker actors and disconnect from Ray (stopping the local instance this executor started)."""
        self.close_soon()
        if self._closing is not None:
            self._closing.join()
            self._closing = None

    def close_soon(self) -> None:
        """End the worker actors now and disconnect in the background (~0.3 s, which the sweep spends on its
        final records meanwhile); `close` waits until disconnected."""
        for slot in self._slots if _ray().is_initialized() else ():
            if slot.actor is not None:
                with contextlib.suppress(Exception):
                    _ray().kill(slot.actor)
        self._slots, self._data = [], None
        if self._owned:
            self._owned = False
            self._closing = threading.Thread(target=_ray().shutdown, name="dlrun-ray-close", daemon=True)
            self._closing.start()

    def start(self, datasets: Mapping[str, Dataset], threads: int | None = None, trials: int | None = None) -> None:
        """Put the data sets in the object store and start the relay and the worker actors now, before the
        trials are ready: each worker imports TensorFlow while the sweep writes its directory and opens its
        study, and serves every later `run` (a sweep's rounds) until `close`. `threads`: the config's
        train.threads, when set; `trials`: how many trials there are to run (no more workers than that)."""
        self._prepare(datasets, threads)
        self._open_relay()
        wanted = self.jobs if trials is None else min(self.jobs, max(1, trials))
        room = _ray().available_resources()
        wanted = min(wanted, int(room.get("CPU", 0) // self.cpus))
        if self.gpus:
            wanted = min(wanted, int(room.get("GPU", 0) // self.gpus))
        for slot in self._slots[:wanted]:
            if slot.actor is None:
                self._new_worker(slot)

    def _open_relay(self) -> None:
        """The round's relay actor, unless `start` opened it: on this node and using no CPU, so trials that
        fill the cluster cannot keep it from starting."""
        from dlrun.sweeps.executors.raytasks import Relay

        if self._relay is None:
            self._relay = Relay.options(scheduling_strategy=on_this_node()).remote()

    def _prepare(self, datasets: Mapping[str, Dataset], threads: int | None) -> None:
        """Once per sweep: the data sets in the object store, the threads of a trial, the slots."""
        if self._data is None:
            self._data = {key: _ray().put(shipping.for_object_store(d)) for key, d in datasets.items()}
            self._threads = threads or self.threads
            self._slots = [_Slot() for _ in range(self.jobs)]

    def run(self, tasks: Iterable[TrialTask], datasets: Mapping[str, Dataset], events: TrialEvents,
            stop: StopRequest) -> None:
        """Run `tasks` (pulled one at a time, when a slot is free) on Ray until done or a stop is requested.
        A sweep's rounds call this once each (the worker actors stay); the sweep closes the executor after
        the last (or on an error)."""
        try:
            pending = iter(tasks)
            first = next(pending, None)
            if first is None:
                return
            if not self._probed:  # once per sweep
                if self.settings.storage == "shared":
                    check_shared_storage(first.run_dir.resolve().parent)
                self._probed = True
            self._prepare(datasets, first.threads)
            self._open_relay()  # per round: no question of an earlier round's loop is left waiting
            self._attempts, self._told = {}, {}
            with drawn_in_background():  # the trials' history plots (inside a sweep, the sweep's plotter draws them)
                self._loop(first, pending, events, stop)
        except BaseException:
            self.close()
            raise
        finally:
            self._relay = None

    def _loop(self, first: TrialTask, pending: Any, events: TrialEvents, stop: StopRequest) -> None:
        ray = _ray()
        running: dict[Any, _Slot] = {}
        self._question = self._relay.take.remote(RELAY_WAIT_SECONDS)
        queued: list[TrialTask] = [first]  # pulled (a slot was free), or to run again, and not yet submitted
        attempts = self._attempts
        signalled = False
        while True:
            try:
                if stop.requested and not signalled:
                    self._relay.stop.remote()
                    signalled = True
                for slot in self._slots:
                    if stop.requested or slot.task is not None:
                        continue
                    task = queued.pop() if queued else next(pending, None)
                    if task is None:
                        break
                    if not self._may_start(slot):  # its worker would wait for room: the trial waits here
                        queued.append(task)
                        break
                    if task.trial_id not in attempts:
                        events.started(task)
                    attempts[task.trial_id] = attempts.get(task.trial_id, 0) + 1
                    slot.task, slot.attempt = task, attempts[task.trial_id]
                    self._run_dirs[task.trial_id] = task.run_dir.resolve()
                    running[self._submit(slot)] = slot
                if not running:
                    if queued and not stop.requested:  # trials to run (again), and no node with room yet
                        threading.Event().wait(RELAY_WAIT_SECONDS)
                        continue
                    for task in queued:  # stopped before they ran again: resumable from their checkpoints
                        if task.trial_id in attempts:
                            events.finished(lost_trial(task, True, "", ""))
                    return
                ready, _ = ray.wait([self._question, *running], num_returns=1, timeout=RELAY_WAIT_SECONDS * 2)
                if self._question in ready:
                    self._take(events)
                for ref in ray.wait(list(running), num_returns=len(running), timeout=0)[0]:
                    slot = running.pop(ref)
                    task, slot.task = slot.task, None
                    result = self._result(ref, slot, task, events, stop)
                    if result is None:  # its worker (or node) died: the trial runs again, from its checkpoint
                        queued.append(task)
                    else:
                        events.finished(result)
            except KeyboardInterrupt:  # a second Ctrl-C: the trials in flight stop at once
                stop.requested = True
                for slot in running.values():
                    ray.kill(slot.actor)

    def _may_start(self, slot: _Slot) -> bool:
        """Whether the slot may take a trial: it has a worker, or the cluster (which may have lost a node)
        has room for one more worker beside those alive; else a worker would wait for room forever."""
        if slot.actor is not None:
            return True
        resources = _ray().available_resources()
        return resources.get("CPU", 0) >= self.cpus and (not self.gpus or resources.get("GPU", 0) >= self.gpus)

    def _new_worker(self, slot: _Slot) -> None:
        """Start the slot's worker actor (it loads TensorFlow; its first trial waits for that)."""
        from dlrun.sweeps.executors.raytasks import TrialWorker

        slot.actor = TrialWorker.options(num_cpus=self.cpus, num_gpus=self.gpus).remote(self._data, self._threads)
        slot.first_peak = None

    def _submit(self, slot: _Slot) -> Any:
        """Hand the slot's trial to its worker actor, started first when the slot has none."""
        assert slot.task is not None and self._data is not None
        if slot.actor is None:
            self._new_worker(slot)
        task = replace(slot.task, run_dir=slot.task.run_dir.resolve())  # Ray's workers run elsewhere
        sent = shipping.bundle(task.run_dir) if self.settings.storage == "ship" else None
        self._bytes.setdefault(task.trial_id, [0, 0])[0] += len(sent or b"")
        return slot.actor.run.remote(task, self._relay, sent, slot.attempt)

    def _take(self, events: TrialEvents) -> None:
        """Handle the reports and questions the relay holds (waiting for the next one when it holds none), and
        ask it for the next ones."""
        questions, self._question = _ray().get(self._question), self._relay.take.remote(RELAY_WAIT_SECONDS)
        self._answer(questions, events)

    def _answer(self, questions: list[Question], events: TrialEvents) -> None:
        """Tell the sweep about each reported epoch (here, in the thread that called `run`, after writing the
        run directory it shipped) and relay its answer to a question. A report from a worker that died since
        (its trial already runs again) is passed over."""
        for key, trial_id, attempt, epoch, row, shipped in questions:
            keep = True
            if attempt == self._attempts.get(trial_id):
                if shipped is not None:  # the epoch's checkpoint, in place before the sweep decides
                    shipping.unpack(shipped, self._run_dirs[trial_id])
                    self._bytes.setdefault(trial_id, [0, 0])[1] += len(shipped)
                keep = bool(events.epoch_ended(trial_id, epoch, row))
                if key is None:
                    self._told[(trial_id, attempt)] = self._told.get((trial_id, attempt), 0) + 1
            if key is not None:
                self._relay.answer.remote(key, keep)

    def _result(self, ref: Any, slot: _Slot, task: TrialTask, events: TrialEvents,
                stop: StopRequest) -> TrialResult | None:
        """The trial's result, once each epoch it reported is handled; None when its worker (or node) died and
        it may run again. A trial whose worker died more often than `max_retries` allows is `failed` with the
        reason (`interrupted` when the sweep is stopping: it resumes from its checkpoint). A worker whose
        memory grew is replaced."""
        ray = _ray()
        try:
            ran = ray.get(ref)
        except ray.exceptions.RayError as exc:
            actor, slot.actor = slot.actor, None  # a fresh worker runs the slot's next trial
            with contextlib.suppress(Exception):
                ray.kill(actor)
            if slot.attempt <= self.settings.max_retries and not stop.requested:
                return None
            reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            message = (f"the Ray worker running the trial died {slot.attempt} time(s) "
                       f"(sweep.backend.max_retries: {self.settings.max_retries}): {type(exc).__name__}: {reason}")
            return lost_trial(task, stop.requested, message, f"\n\n{exc}")
        while self._told.get((task.trial_id, slot.attempt), 0) < ran.told:  # queued at the relay: they come at once
            self._take(events)
        result = ran.result
        slot.first_peak, spent = outgrown(slot.first_peak, result.peak_mib, self.growth_mib)
        sent, back = self._bytes.setdefault(task.trial_id, [0, 0])  # its shipped run directory written here:
        result.summary = shipping.record_trial(task.run_dir, result.summary, {**ran.where, "replaced": spent},
                                               ran.shipped, {"attempts": slot.attempt, "storage": self.settings.storage,
                                                             "sent_bytes": sent, "shipped_bytes": back})
        for rows, path, *rest in ran.plots:  # drawn by this process' plotter, while the trials go on
            history_plot(rows, task.run_dir.resolve() / path, *rest)
        if spent:
            ray.kill(slot.actor)  # a fresh worker takes its place for the next trial
            slot.actor = None
        return result
