"""The config sections about scale: where a sweep's trials run (`sweep.backend`) and how one model
spreads over several devices (`train.distribute`). Shapes and descriptions only, as in schema.py."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from dlrun.config.section import Int, NonNegFloat, PosInt, Section

# Keras 3 trains under tf.distribute.MirroredStrategy (one machine) but not MultiWorkerMirroredStrategy.
MULTI_WORKER_REASON = (
    "strategy multi_worker (tf.distribute.MultiWorkerMirroredStrategy) is not supported by Keras 3 "
    "(keras-team/keras#20585); one model trains on the devices of one machine (strategy: mirrored). "
    "To use several machines, run a sweep's trials across them: dlrun sweep CONFIG --backend ray --address auto")


class BackendConfig(Section):
    """Where a sweep's trials run: this machine's processes (local) or a Ray cluster (ray)."""

    name: Literal["local", "ray"] = Field(default="local", description="local: this machine's processes "
                                          "(--jobs); ray: a Ray cluster's worker actors, one per trial slot "
                                          "(needs pip install dlrun[ray]).")
    address: str | None = Field(default=None, description="ray: the cluster to join: auto (the one `ray start` "
                                "started here), HOST:PORT or ray://HOST:PORT; unset: start a local Ray instance "
                                "sized to this machine.")
    cpus_per_trial: PosInt = Field(default=1, description="ray: CPUs each trial reserves (its TensorFlow threads "
                                   "are capped to them).")
    gpus_per_trial: NonNegFloat | None = Field(default=None, description="ray: GPUs each trial reserves (Ray "
                                         "sets CUDA_VISIBLE_DEVICES); unset: 1 when the cluster has GPUs, else 0.")
    storage: Literal["ship", "shared"] = Field(default="ship", description="ray: where a trial writes its run "
                                               "directory. ship: on the node that runs it (its temporary "
                                               "directory), sent to the sweep's directory after each epoch's "
                                               "checkpoint and at the end, so no shared file system is needed; "
                                               "shared: straight into the sweep's directory, which every node "
                                               "must mount at the same path (checked at start).")
    max_retries: Int = Field(default=2, ge=0, description="ray: times a trial whose worker process or node died "
                             "is run again (from its last checkpoint) before it is marked failed; a diverged "
                             "trial is a result and never retried.")


class DistributeConfig(Section):
    """One model on several devices of one machine with tf.distribute."""

    strategy: Literal["mirrored", "multi_worker"] = Field(
        default="mirrored", description="mirrored: tf.distribute.MirroredStrategy, one replica per device "
        "(train.batch_size is the global batch, split across them). multi_worker is refused: Keras 3 does not "
        "support it (keras-team/keras#20585).")
    devices: PosInt | list[str] = Field(
        default=2, description="How many devices (GPUs; on a machine without GPUs, logical CPU devices made "
        "with DLRUN_CPU_DEVICES=N), or their names, e.g. [/gpu:0, /gpu:1].")

    @field_validator("strategy")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value == "multi_worker":
            raise ValueError(MULTI_WORKER_REASON)
        return value

    @field_validator("devices")
    @classmethod
    def _named(cls, value: int | list[str]) -> int | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("give at least one device name, or a count")
        return value
