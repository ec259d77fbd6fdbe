"""`train.distribute`: one model on several devices of this machine under tf.distribute.MirroredStrategy.

The model is built (and its weights loaded: a base, a transfer source, a checkpoint) inside the strategy's
scope, so Keras' trainer runs each step on every replica with `train.batch_size` as the global batch. On a
machine without GPUs, `DLRUN_CPU_DEVICES=N` splits the CPU into N logical devices (backend.tf does it
before TensorFlow starts): that is how the tests and the benchmark run a mirrored model on a CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from dlrun.config import LoadedConfig
from dlrun.engine import backend

CPU_DEVICES_ENV = backend.CPU_DEVICES_ENV


def _short(name: str) -> str:
    """'/job:localhost/replica:0/task:0/device:GPU:1' and '/gpu:1' both as 'gpu:1'."""
    return name.rsplit("device:", 1)[-1].lstrip("/").lower()


def pick_devices(lc: LoadedConfig) -> list[str]:
    """The device names `train.distribute.devices` asks for, among the logical devices found (GPUs when there
    are any, else CPUs). ConfigError saying what was found when they are not there."""
    tf = backend.tf()
    devices = lc.config.train.distribute.devices  # type: ignore[union-attr]
    found = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    names = [d.name for d in found]
    shown = ", ".join(_short(n) for n in names)
    split = (f"; on a machine without GPUs, {CPU_DEVICES_ENV}=N splits the CPU into N logical devices (for "
             "testing: they share the same cores)")
    if isinstance(devices, int):
        if devices > len(names):
            raise lc.error("train.distribute.devices", f"asks for {devices} devices but this machine has "
                           f"{len(names)} ({shown}){split if 'cpu' in shown else ''}")
        return names[:devices]
    by_short = {_short(n): n for n in names}
    missing = [d for d in devices if _short(d) not in by_short]
    if missing:
        raise lc.error("train.distribute.devices", f"no device {', '.join(missing)} here (found: {shown}){split}")
    return [by_short[_short(d)] for d in devices]


@contextlib.contextmanager
def strategy_scope(lc: LoadedConfig) -> Iterator[Any]:
    """The scope a model is built in: MirroredStrategy's over the chosen devices, or nothing (yields None)
    when `train.distribute` is not set."""
    if lc.config.train.distribute is None:
        yield None
        return
    tf = backend.tf()
    strategy = tf.distribute.MirroredStrategy(devices=pick_devices(lc))
    with strategy.scope():
        yield strategy


def distribution(model: Any, batch_size: int) -> dict[str, Any]:
    """Summary fields of a model built under a strategy: replicas, devices, global and per-replica batch."""
    strategy = getattr(model, "_distribute_strategy", None)
    if strategy is None:
        return {}
    replicas = int(strategy.num_replicas_in_sync)
    return {"distribute": {"strategy": "mirrored", "replicas": replicas,
                           "devices": [_short(d) for d in strategy.extended.worker_devices],
                           "global_batch_size": batch_size, "per_replica_batch_size": batch_size / replicas}}
