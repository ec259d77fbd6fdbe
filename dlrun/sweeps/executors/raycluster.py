"""`RayExecutor`: a sweep's trials as Ray tasks, on a local Ray instance or a Ray cluster.

The sweep process stays the driver: it prepares the data once and puts it in Ray's object store (every
trial reads that one copy), hands a trial to Ray only when a slot (the CPUs and GPUs a trial reserves) is
free, answers each trial's per-epoch report (`TrialEvents.epoch_ended`) through a relay actor, and writes
the sweep's records. Each trial runs in a fresh worker process and writes its run directory under the
sweep directory, which every node must see (checked at start). A worker or node that dies makes Ray run
the trial again, from its last checkpoint, up to `max_retries` times.

Importing this module loads Ray (never TensorFlow); only `--backend ray` imports it.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dlrun.config.scale import BackendConfig
from dlrun.data import Dataset
from dlrun.errors import SweepError
from dlrun.interrupts import StopRequest
from dlrun.sweeps.executors.base import TrialEvents, TrialResult, TrialTask, lost_trial
from dlrun.sweeps.executors.devices import cpu_count

MIN_OBJECT_STORE = 100 * 2**20  # Ray's own minimum is ~75 MiB; the data sets are put there once
PROBE_SECONDS = 120.0
RELAY_WAIT_SECONDS = 0.5


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SweepError("--backend ray needs Ray, which is not installed: pip install 'dlrun[ray]' (or use "
                         "--backend local)") from None
    return ray


def connect(address: str | None, data_bytes: int) -> bool:
    """Join the Ray cluster at `address` (auto, HOST:PORT, ray://HOST:PORT), or start a local Ray instance
    sized to this machine when None. Reuses a connection this process already has. True when this call
    connected (the caller disconnects at the end)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address:
            _token_auth(address)
            ray.init(address=address, **quiet)
        else:  # "local": a fresh instance even when `ray start` left one running here
            store = max(MIN_OBJECT_STORE, 2 * data_bytes)
            ray.init(address="local", num_cpus=cpu_count(), object_store_memory=store, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise SweepError(f"cannot connect to {where} ({reason}); start one with `ray start --head`, give its "
                         "address with --address (auto: the one started on this machine), or leave --address "
                         "out to start one for this sweep. A cluster with token authentication needs its token "
                         "here too (~/.ray/auth_token, or RAY_AUTH_TOKEN)") from None
    return True


def _token_auth(address: str) -> None:
    """`ray start` turns on token authentication and saves the token in ~/.ray/auth_token; Ray's driver uses
    it for `auto` but not for an explicit address unless RAY_AUTH_MODE says so. Say so when the token is there
    (an explicit RAY_AUTH_MODE is left alone)."""
    token = any(os.environ.get(k) for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")) \
        or (Path.home() / ".ray" / "auth_token").is_file()
    if address != "auto" and "RAY_AUTH_MODE" not in os.environ and token:
        os.environ["RAY_AUTH_MODE"] = "token"


def check_shared_storage(directory: Path) -> None:
    """Every alive node writes a probe file into `directory`; this process must see each one. SweepError
    naming the nodes that cannot (their trials' run directories would be lost)."""
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from dlrun.sweeps.executors.raytasks import probe

    token = uuid.uuid4().hex
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(str(directory), token) for n in nodes]
    try:
        written = ray.get(refs, timeout=PROBE_SECONDS)
    except ray.exceptions.RayError as exc:
        raise SweepError(f"the storage probe did not come back from every Ray node within {PROBE_SECONDS:.0f} s "
                         f"({type(exc).__name__}); check the cluster with `ray status`") from None
    missing = []
    for host, where in written:
        path = Path(where)
        if path.is_absolute() and path.is_file() and path.read_text() == token:
            path.unlink()
        else:
            missing.append(f"{host}: {where if not path.is_absolute() else 'wrote a file this process cannot see'}")
    if missing:
        raise SweepError(f"the sweep directory {directory.parent} is not on storage every Ray node sees "
                         f"({'; '.join(missing)}); trials there would be lost. Put --sweep-dir (or --runs) on a "
                         "shared file system mounted at the same path on every node")


class RayExecutor:
    """Trials as Ray tasks: at most `jobs` at once (the cluster's CPUs and GPUs over what a trial reserves,
    capped by --jobs), each in a fresh worker process with its threads capped to its CPUs."""

    def __init__(self, settings: BackendConfig, data_bytes: int = 0, jobs: int | None = None):
        self.settings, self.cpus = settings, settings.cpus_per_trial
        self.threads = self.cpus
        self._owned = connect(settings.address, data_bytes)
        self._data: dict[str, Any] | None = None  # the sweep's data sets in the object store, put by the first round
        self._relay: Any = None
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
        """Disconnect from Ray (stopping the local instance this executor started)."""
        if self._owned:
            _ray().shutdown()
            self._owned = False
        self._data = None

    def run(self, tasks: Iterable[TrialTask], datasets: Mapping[str, Dataset], events: TrialEvents,
            stop: StopRequest) -> None:
        """Run `tasks` (pulled one at a time, when a slot is free) on Ray until done or a stop is requested.
        A sweep's rounds call this once each; the sweep closes the executor after the last (or on an error)."""
        ray = _ray()
        try:
            pending = iter(tasks)
            first = next(pending, None)
            if first is None:
                return
            if self._data is None:  # once per sweep: the storage probe, and the data in the object store
                check_shared_storage(first.run_dir.parent)
                self._data = {key: ray.put(d) for key, d in datasets.items()}
            from dlrun.sweeps.executors.raytasks import Relay

            self._relay = Relay.remote()  # per round: no question of an earlier round's loop is left waiting
            self._loop(first, pending, events, stop)
        except BaseException:
            self.close()
            raise

    def _loop(self, first: TrialTask, pending: Any, events: TrialEvents, stop: StopRequest) -> None:
        ray = _ray()
        running: dict[Any, TrialTask] = {}
        question = self._relay.take.remote(RELAY_WAIT_SECONDS)
        queued: list[TrialTask] = [first]  # pulled (a slot was free) and not yet submitted
        signalled = False
        while True:
            try:
                if stop.requested and not signalled:
                    self._relay.stop.remote()
                    signalled = True
                while not stop.requested and len(running) < self.jobs:
                    task = queued.pop() if queued else next(pending, None)
                    if task is None:
                        break
                    running[self._submit(task)] = task
                    events.started(task)
                if not running:
                    return
                ready, _ = ray.wait([question, *running], num_returns=1, timeout=RELAY_WAIT_SECONDS * 2)
                if question in ready:
                    self._answer(ray.get(question), events)
                    question = self._relay.take.remote(RELAY_WAIT_SECONDS)
                for ref in ray.wait(list(running), num_returns=len(running), timeout=0)[0]:
                    events.finished(self._result(ref, running.pop(ref), stop))
            except KeyboardInterrupt:  # a second Ctrl-C: the trials in flight stop at once
                stop.requested = True
                for ref in running:
                    ray.cancel(ref, force=True)

    def _submit(self, task: TrialTask) -> Any:
        from dlrun.sweeps.executors.raytasks import run_trial

        options = {"num_cpus": self.cpus, "num_gpus": self.gpus, "max_retries": self.settings.max_retries,
                   "retry_exceptions": False, "name": f"dlrun-trial-{task.trial_id}"}
        return run_trial.options(**options).remote(task, self._data[task.data_key], task.threads or self.threads,
                                                   self._relay)

    def _answer(self, questions: list[tuple[str, str, int, dict[str, Any]]], events: TrialEvents) -> None:
        """Ask the sweep about each reported epoch (here, in the thread that called `run`) and relay the answer."""
        for key, trial_id, epoch, row in questions:
            self._relay.answer.remote(key, bool(events.epoch_ended(trial_id, epoch, row)))

    def _result(self, ref: Any, task: TrialTask, stop: StopRequest) -> TrialResult:
        """The trial's result; for a trial whose worker died more often than Ray retries it, `failed` with
        the reason (`interrupted` when the sweep is stopping: it resumes from its checkpoint)."""
        ray = _ray()
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:
            reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            message = (f"the Ray worker running the trial died {self.settings.max_retries + 1} time(s) "
                       f"(sweep.backend.max_retries: {self.settings.max_retries}): {type(exc).__name__}: {reason}")
            return lost_trial(task, stop.requested, message, f"\n\n{exc}")
