"""`RayExecutor`: a sweep's trials as Ray tasks, on a local Ray instance or a Ray cluster.

The sweep process stays the driver: it prepares the data once and puts it in Ray's object store, hands a
trial to a slot's worker actor (one per slot: the CPUs and GPUs a trial reserves) only when the slot is
free, answers each trial's per-epoch report (`TrialEvents.epoch_ended`) through a relay actor on its own
node, and writes the sweep's records. A worker actor lives for the sweep and lends its compiled models to
its next trials, as a local worker does, and is replaced by the local workers' rule once its memory grew
(base.outgrown). Each trial writes its run directory on its node, shipped back here (storage: ship), or
under the sweep directory (resolved here) that every node sees (storage: shared, checked at start). A
worker or node that dies costs its trial one more attempt, from its last checkpoint, on a fresh worker (up
to `max_retries` more).

Importing this module loads Ray (never TensorFlow); only `--backend ray` imports it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dlrun.config.scale import BackendConfig
from dlrun.data import Dataset
from dlrun.errors import SweepError
from dlrun.interrupts import StopRequest
from dlrun.store import files, names
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
        self._owned = connect(settings.address, data_bytes)
        self._data: dict[str, Any] | None = None  # the sweep's data sets in the object store, put by the first round
        self._relay: Any = None
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
        if self._slots and _ray().is_initialized():
            for slot in self._slots:
                if slot.actor is not None:
                    with contextlib.suppress(Exception):
                        _ray().kill(slot.actor)
        self._slots = []
        if self._owned:
            _ray().shutdown()
            self._owned = False
        self._data = None

    def run(self, tasks: Iterable[TrialTask], datasets: Mapping[str, Dataset], events: TrialEvents,
            stop: StopRequest) -> None:
        """Run `tasks` (pulled one at a time, when a slot is free) on Ray until done or a stop is requested.
        A sweep's rounds call this once each (the worker actors stay); the sweep closes the executor after
        the last (or on an error)."""
        ray = _ray()
        try:
            pending = iter(tasks)
            first = next(pending, None)
            if first is None:
                return
            if self._data is None:  # once per sweep: the storage probe, and the data in the object store
                if self.settings.storage == "shared":
                    check_shared_storage(first.run_dir.resolve().parent)
                self._data = {key: ray.put(shipping.for_object_store(d)) for key, d in datasets.items()}
                self._threads = first.threads or self.threads
                self._slots = [_Slot() for _ in range(self.jobs)]
            from dlrun.sweeps.executors.raytasks import Relay

            # per round (no question of an earlier round's loop is left waiting), on this node and using no
            # CPU: trials that fill the cluster cannot keep it from starting
            self._relay = Relay.options(scheduling_strategy=on_this_node()).remote()
            self._loop(first, pending, events, stop)
        except BaseException:
            self.close()
            raise

    def _loop(self, first: TrialTask, pending: Any, events: TrialEvents, stop: StopRequest) -> None:
        ray = _ray()
        running: dict[Any, _Slot] = {}
        question = self._relay.take.remote(RELAY_WAIT_SECONDS)
        queued: list[TrialTask] = [first]  # pulled (a slot was free), or to run again, and not yet submitted
        attempts: dict[str, int] = {}
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
                ready, _ = ray.wait([question, *running], num_returns=1, timeout=RELAY_WAIT_SECONDS * 2)
                if question in ready:
                    self._answer(ray.get(question), events)
                    question = self._relay.take.remote(RELAY_WAIT_SECONDS)
                for ref in ray.wait(list(running), num_returns=len(running), timeout=0)[0]:
                    slot = running.pop(ref)
                    task, slot.task = slot.task, None
                    result = self._result(ref, slot, task, stop)
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

    def _submit(self, slot: _Slot) -> Any:
        """Hand the slot's trial to its worker actor, started first when the slot has none."""
        from dlrun.sweeps.executors.raytasks import TrialWorker

        assert slot.task is not None and self._data is not None
        if slot.actor is None:
            options = {"num_cpus": self.cpus, "num_gpus": self.gpus}
            slot.actor = TrialWorker.options(**options).remote(self._data, self._threads)
            slot.first_peak = None
        task = replace(slot.task, run_dir=slot.task.run_dir.resolve())  # Ray's workers run elsewhere
        sent = shipping.bundle(task.run_dir) if self.settings.storage == "ship" else None
        self._bytes.setdefault(task.trial_id, [0, 0])[0] += len(sent or b"")
        return slot.actor.run.remote(task, self._relay, sent)

    def _answer(self, questions: list[tuple[str, str, int, dict[str, Any], bytes | None]],
                events: TrialEvents) -> None:
        """Ask the sweep about each reported epoch (here, in the thread that called `run`, after writing the
        run directory it shipped) and relay the answer."""
        for key, trial_id, epoch, row, shipped in questions:
            if shipped is not None:  # the epoch's checkpoint, in place before the sweep decides
                shipping.unpack(shipped, self._run_dirs[trial_id])
                self._bytes.setdefault(trial_id, [0, 0])[1] += len(shipped)
            self._relay.answer.remote(key, bool(events.epoch_ended(trial_id, epoch, row)))

    def _result(self, ref: Any, slot: _Slot, task: TrialTask, stop: StopRequest) -> TrialResult | None:
        """The trial's result; None when its worker (or node) died and it may run again. A trial whose worker
        died more often than `max_retries` allows is `failed` with the reason (`interrupted` when the sweep
        is stopping: it resumes from its checkpoint). A worker whose memory grew is replaced."""
        ray = _ray()
        try:
            result, where, shipped = ray.get(ref)
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
        slot.first_peak, spent = outgrown(slot.first_peak, result.peak_mib, self.growth_mib)
        result.summary = self._record(task, result.summary, {**where, "replaced": spent}, shipped, slot.attempt)
        if spent:
            ray.kill(slot.actor)  # a fresh worker takes its place for the next trial
            slot.actor = None
        return result

    def _record(self, task: TrialTask, summary: dict[str, Any], where: dict[str, Any], shipped: bytes | None,
                attempt: int) -> dict[str, Any]:
        """Write the run directory the trial shipped, and where it ran (Ray node id, host, worker actor, the
        worker's memory after the trial and whether it was replaced for its growth), its attempts and the bytes
        sent and shipped back into its summary.json; the summary as recorded."""
        run = task.run_dir.resolve()
        sent, back = self._bytes.setdefault(task.trial_id, [0, 0])
        if shipped is not None:
            shipping.unpack(shipped, run)
            back += len(shipped)
        if not summary:
            return summary
        record = {**where, "attempts": attempt, "storage": self.settings.storage, "sent_bytes": sent,
                  "shipped_bytes": back}
        summary = {**summary, "run_dir": str(task.run_dir), "ray": record}
        files.write_json(run / names.SUMMARY, summary)
        return summary

