"""What a tracker receives from a run or sweep directory, read from its files: parameters (the
resolved config, flattened), the epoch rows, the final metrics, tags and artifacts, and the state
file that says what has been sent already. No tracker library here."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from dlrun._version import __version__
from dlrun.config.flat import flatten_config, read_config_file
from dlrun.errors import RunDirError
from dlrun.store import files, names
from dlrun.store.status import effective_status

# dlrun status -> MLflow run status; the dlrun status itself goes into the `dlrun.status` tag
MLFLOW_STATUS = {"completed": "FINISHED", "pruned": "KILLED", "diverged": "FAILED", "failed": "FAILED",
                 "crashed": "FAILED", "interrupted": "KILLED", "running": "RUNNING", "damaged": "FAILED"}
FINAL = frozenset({"completed", "pruned", "diverged", "failed"})  # a run that will not train again
NOT_EPOCH_METRICS = ("epoch", "seconds")
RUN_ARTIFACTS = (names.CONFIG, names.SUMMARY, names.METRICS, names.MODEL_TXT, names.HISTORY_PLOT,
                 names.CONFUSION_PLOT, names.EVAL, names.CLASSES, names.TRANSFER)
SWEEP_ARTIFACTS = (names.SWEEP_SPEC, names.SUMMARY, names.SWEEP_RESULTS, names.SWEEP_BEST, names.SWEEP_HEATMAP)
MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter value


def summary_of(path: Path) -> dict[str, Any]:
    """The directory's summary.json ({} when it has none or it is unreadable)."""
    try:
        return files.read_json(path / names.SUMMARY) if (path / names.SUMMARY).is_file() else {}
    except RunDirError:
        return {}


def status_of(path: Path) -> str:
    """The run's dlrun status (`crashed` for a dead `running` process)."""
    return effective_status(summary_of(path), path)


def params(path: Path) -> dict[str, str]:
    """The resolved config flattened to dotted keys, values as text (settings that do not apply left out)."""
    try:
        flat = flatten_config(read_config_file(path / names.CONFIG))
    except RunDirError:
        return {}
    return {key: str(value)[:MAX_PARAM_CHARS] for key, value in flat.items()}


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def epoch_rows(path: Path) -> list[tuple[int, dict[str, float]]]:
    """(epoch, {metric: value}) per row of metrics.csv, non-finite values left out."""
    try:
        rows = files.read_csv(path / names.METRICS)
    except (OSError, ValueError, UnicodeDecodeError):
        return []
    out = []
    for n, row in enumerate(rows, start=1):
        epoch = _float(row.get("epoch"))
        values = {k: v for k, raw in row.items() if k not in NOT_EPOCH_METRICS and (v := _float(raw)) is not None}
        out.append((int(epoch) if epoch is not None else n, values))
    return out


def final_metrics(summary: dict[str, Any], epoch_names: set[str]) -> dict[str, float]:
    """The summary's metrics; one that is also an epoch series is renamed final_<name> (the kept
    weights' value need not be the last epoch's)."""
    metrics = summary.get("metrics") if isinstance(summary.get("metrics"), dict) else {}
    out = {}
    for key, value in metrics.items():
        number = _float(value) if not isinstance(value, bool) else None
        if number is not None:
            out[f"final_{key}" if key in epoch_names else str(key)] = number
    return out


def tags(path: Path, summary: dict[str, Any], kind: str) -> dict[str, str]:
    """dlrun's tags of a run: version, run directory, kind, status, data fingerprint, and where it
    diverged or was pruned."""
    status = effective_status(summary, path)
    out = {"dlrun.version": __version__, "dlrun.run_dir": str(path.resolve()), "dlrun.kind": kind,
           "dlrun.status": status}
    for key in ("data_fingerprint", "diverged_epoch", "pruned_epoch", "config_sha256", "metric", "goal"):
        if summary.get(key) is not None:
            out[f"dlrun.{key}"] = str(summary[key])
    return out


def read_state(path: Path, uri: str) -> dict[str, Any]:
    """What has been sent to the store at `uri` for this directory ({} for nothing yet)."""
    try:
        data = files.read_json(path / names.MLFLOW_STATE) if (path / names.MLFLOW_STATE).is_file() else {}
    except RunDirError:
        return {}
    state = (data.get("stores") or {}).get(uri)
    return dict(state) if isinstance(state, dict) else {}


def write_state(path: Path, uri: str, state: dict[str, Any]) -> None:
    """Record what has been sent to the store at `uri` (other stores' records kept)."""
    try:
        data = files.read_json(path / names.MLFLOW_STATE) if (path / names.MLFLOW_STATE).is_file() else {}
    except RunDirError:
        data = {}
    stores = data.get("stores") if isinstance(data.get("stores"), dict) else {}
    files.write_json(path / names.MLFLOW_STATE, {"stores": {**stores, uri: state}})


def is_sweep(path: Path) -> bool:
    """Whether `path` is a sweep directory."""
    return (path / names.SWEEP_SPEC).is_file() or (path / names.SWEEP_TRIALS).is_dir()


def trial_dirs(sweep: Path) -> list[Path]:
    """A sweep's trial directories, in trial order."""
    folder = sweep / names.SWEEP_TRIALS
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
