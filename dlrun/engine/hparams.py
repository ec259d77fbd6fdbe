"""A sweep's records for TensorBoard's HParams dashboard, written with TensorBoard's `hparams` summary
module and no TensorFlow (the process that runs a sweep may never load it):

- SWEEP/tb: the experiment: every swept key with the values it takes, and the metrics to show;
- each trial's RUN/tb: its values (the session start) and, once it has ended, its status (the end).

The trials' per-epoch scalars are in RUN/tb/train and RUN/tb/validation, which is where the
dashboard looks up a metric of group `train` or `validation`: `tensorboard --logdir SWEEP` then shows
the table, the parallel coordinates and every trial's curves.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from dlrun.engine.events import event_files, scalar_location, summary_event, write_event_file

SUFFIX = ".hparams"  # these files are the sweep's: a resumed trial keeps them
END_SUFFIX = ".hparams-end"
HParamValue = bool | float | str


def _kind(values: list[Any]) -> type:
    """The one type TensorBoard can hold all of `values` in: bool, float (numbers) or str."""
    if all(isinstance(v, bool) for v in values):
        return bool
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return float
    return str


def as_value(value: Any, kind: type) -> HParamValue:
    """`value` as TensorBoard stores it: a bool, a float, or text (YAML-like for lists and null)."""
    if kind is bool:
        return bool(value)
    if kind is float:
        return float(value)
    return value if isinstance(value, str) else json.dumps(value)


def kinds(domains: dict[str, list[Any]]) -> dict[str, type]:
    """The stored type of each swept key."""
    return {key: _kind(values) for key, values in domains.items()}


def _written(folder: Path, suffix: str) -> bool:
    return any(p.name.endswith(suffix) for p in event_files(folder))


def write_experiment(folder: Path, domains: dict[str, list[Any]], metrics: list[str]) -> Path | None:
    """The experiment in `folder` (once: a resumed sweep leaves it): each key of `domains` with its
    values, and `metrics` (summary metric names such as val_accuracy, located as the runs write them)."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    if _written(folder, SUFFIX):
        return None
    types = kinds(domains)
    hparams = [hp.HParam(key, hp.Discrete(sorted({as_value(v, types[key]) for v in values})), description=key)
               for key, values in domains.items()]
    shown = []
    for name in dict.fromkeys(metrics):
        group, tag = scalar_location(name)
        kind = hp.Metric.VALIDATION if group == "validation" else hp.Metric.TRAINING if group == "train" else None
        shown.append(hp.Metric(tag, group=group, display_name=name, dataset_type=kind))
    summary = hp.hparams_config_pb(hparams, shown, time_created_secs=time.time())
    return write_event_file(folder, [summary_event(summary)], SUFFIX)


def write_trial(folder: Path, values: dict[str, Any], types: dict[str, type], trial_id: str) -> Path | None:
    """A trial's values in its RUN/tb `folder` (once: a resumed sweep leaves them), under `trial_id`,
    which must be unique across the sweeps shown together."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    if _written(folder, SUFFIX):
        return None
    stored = {key: as_value(value, types.get(key, _kind([value]))) for key, value in values.items()}
    return write_event_file(folder, [summary_event(hp.hparams_pb(stored, trial_id=trial_id))], SUFFIX)


# TensorBoard has no "pruned": unknown keeps a pruned trial out of both the success and the failure filter
STATUSES = {"completed": "STATUS_SUCCESS", "diverged": "STATUS_FAILURE", "failed": "STATUS_FAILURE",
            "pruned": "STATUS_UNKNOWN"}


def write_trial_end(folder: Path, status: str) -> Path | None:
    """The end of a trial (completed: success; diverged or failed: failure; pruned: unknown). Nothing for a
    trial that only stopped (interrupted: it resumes later), or when its end is recorded already."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    if status not in STATUSES or _written(folder, END_SUFFIX):
        return None
    info = plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value(STATUSES[status]), end_time_secs=time.time())
    summary = summary_pb2.Summary()
    summary.value.add(tag=metadata.SESSION_END_INFO_TAG, tensor=metadata.NULL_TENSOR,
                      metadata=metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(session_end_info=info)))
    return write_event_file(folder, [summary_event(summary)], END_SUFFIX)


def is_sweep_record(path: Path) -> bool:
    """True for a file written here (a run's own event files are rewritten on resume; these are not)."""
    return path.name.endswith((SUFFIX, END_SUFFIX))
