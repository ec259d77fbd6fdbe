"""Joining a Ray cluster for `RayExecutor` (raycluster.py): the connection (a cluster's address, or a local
instance sized to this machine; token authentication), the probe that checks a sweep directory is on storage
every node sees (`storage: shared`), and the placement of actors on the sweep's own node.

Importing this module loads Ray lazily (never TensorFlow); only `--backend ray` imports it.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

from dlrun.errors import SweepError
from dlrun.sweeps.executors.devices import cpu_count

MIN_OBJECT_STORE = 100 * 2**20  # Ray's own minimum is ~75 MiB; the data sets are put there once
PROBE_SECONDS = 120.0


def ray_module() -> Any:
    """The `ray` module; SweepError saying how to install it when it is not."""
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
    ray = ray_module()
    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address:
            guessed = _token_auth(address)
            ray.init(address=address, **quiet)
            if guessed and not _actors_start():  # Ray keeps a process' auth mode: it cannot try again here
                ray.shutdown()
                raise SweepError(f"the Ray cluster at {address} does not use token authentication, but a token "
                                 "was found here (~/.ray/auth_token) and used: the cluster joined, yet refused "
                                 "every actor. Run the sweep with RAY_AUTH_MODE=disabled in its environment")
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


def _token_auth(address: str) -> bool:
    """`ray start` turns on token authentication and saves the token in ~/.ray/auth_token; Ray's driver uses
    it for `auto` but not for an explicit address unless RAY_AUTH_MODE says so. Say so when the token is there
    (an explicit RAY_AUTH_MODE is left alone); True when this guessed it."""
    token = any(os.environ.get(k) for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")) \
        or (Path.home() / ".ray" / "auth_token").is_file()
    if address != "auto" and "RAY_AUTH_MODE" not in os.environ and token:
        os.environ["RAY_AUTH_MODE"] = "token"
        return True
    return False


def _actors_start() -> bool:
    """Whether an actor starts on this cluster. A driver in token mode joins a cluster without token
    authentication (one started by another process, e.g. `ray.cluster_utils.Cluster`), but every actor it
    creates is destroyed before it runs; the sweep's relay would be the first casualty."""
    ray = ray_module()
    from dlrun.sweeps.executors.raytasks import Relay

    try:
        ray.get(Relay.options(scheduling_strategy=on_this_node()).remote().is_stopping.remote(), timeout=60)
    except ray.exceptions.RayError:
        return False
    return True


def check_shared_storage(directory: Path) -> None:
    """Every alive node writes a probe file into `directory`; this process must see each one. SweepError
    naming the nodes that cannot (their trials' run directories would be lost)."""
    ray = ray_module()
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


def on_this_node() -> Any:
    """A scheduling strategy that places an actor on the driver's own node (hard: it never moves)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(ray_module().get_runtime_context().get_node_id(), soft=False)
