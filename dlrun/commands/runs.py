"""`dlrun runs`: list run and sweep directories with their status, and compare two runs.

Reads only what runs leave on disk (summary.json, metrics.csv, config.yaml); no TensorFlow.
Directories written by other commands (sweeps, transfers) are read generically: whatever
summary.json they have supplies status, times and metrics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from dlrun.config.safe_yaml import load_value
from dlrun.errors import RunDirError
from dlrun.store import files, names
from dlrun.store.status import DAMAGED, damage, effective_status

# Shown first when present, in this order; at most MAX_METRICS of them per row. Without a test split the
# final metrics are train_* (measured on the training data) and are shown under that name.
PREFERRED_METRICS = ("test_accuracy", "test_mae", "train_accuracy", "train_mae", "best_val_accuracy",
                     "best_val_loss", "val_accuracy", "test_loss", "train_loss", "val_loss", "best_value", "best")
MAX_METRICS = 3


@dataclass
class RunInfo:
    """One entry of `dlrun runs`: a run or a sweep directory."""

    path: str
    kind: str
    name: str
    status: str
    started: str | None = None
    seconds: float | None = None
    epochs: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    problem: str | None = None  # why a `damaged` run's records cannot be read
    tensorboard: str | None = None  # what to pass to `tensorboard --logdir`: RUN/tb, or a sweep directory

    def to_dict(self) -> dict[str, Any]:
        """Plain data for --json."""
        return asdict(self)


def _numbers(mapping: Any) -> dict[str, float]:
    if not isinstance(mapping, dict):
        return {}
    return {str(k): float(v) for k, v in mapping.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def run_metrics(path: Path, summary: dict[str, Any]) -> dict[str, float]:
    """The run's numeric results: summary metrics (or a sweep's best), else the last epoch so far."""
    found = _numbers(summary.get("metrics"))
    best = summary.get("best")
    if not found and isinstance(best, dict):  # a sweep: its best trial's metric
        if isinstance(best.get("value"), int | float) and best.get("metric"):
            found = {f"best_{best['metric']}": float(best["value"])}
        else:
            found = _numbers(best.get("metrics")) or _numbers(best)
    if not found:
        rows = _safe_rows(path / names.METRICS)
        if rows:
            found = {k: float(v) for k, v in rows[-1].items() if k not in ("epoch", "lr", "seconds") and _is_float(v)}
    return found


def key_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Up to MAX_METRICS headline metrics, preferred names first."""
    names = [k for k in PREFERRED_METRICS if k in metrics] + sorted(k for k in metrics if k not in PREFERRED_METRICS)
    return {k: metrics[k] for k in names[:MAX_METRICS]}


def _is_float(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _safe_rows(path: Path) -> list[dict[str, str]]:
    try:
        return files.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError):
        return []


def kind_of(path: Path, summary: dict[str, Any]) -> str | None:
    """`sweep`, `transfer`, `run`, or None when `path` is not something dlrun wrote."""
    if summary.get("kind") in ("sweep", "transfer", "run"):
        return str(summary["kind"])
    if (path / names.SWEEP_SPEC).is_file() or (path / names.SWEEP_TRIALS).is_dir():
        return "sweep"
    if (path / names.TRANSFER).is_file():
        return "transfer"
    if summary or (path / names.CONFIG).is_file():
        return "run"
    return None


def _sweep_damage(path: Path) -> str | None:
    """Why a sweep directory's sweep.yaml cannot be read back, or None."""
    spec = path / names.SWEEP_SPEC
    if not spec.exists():
        return None
    try:
        data = load_value(spec.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return f"{spec}: unreadable ({exc})"
    return None if isinstance(data, dict) else f"{spec}: not a sweep spec (expected a mapping)"


def read_run(path: Path) -> RunInfo | None:
    """A RunInfo for a run or sweep directory; None for anything else."""
    problem = damage(path)
    try:
        summary = files.read_json(path / names.SUMMARY) if (path / names.SUMMARY).exists() else {}
    except RunDirError:
        summary = {}
    kind = kind_of(path, summary) if problem is None else ("sweep" if (path / names.SWEEP_SPEC).exists() else "run")
    if kind == "sweep" and problem is None:
        problem = _sweep_damage(path)
    if kind is None:
        return None
    # train writes its summary first thing; other commands may write theirs only at the end
    status = effective_status(summary, path) if summary or kind == "run" else "unknown"
    if problem is not None:
        status = DAMAGED
    started = summary.get("started")
    if not isinstance(started, str):
        started = datetime.fromtimestamp(path.stat().st_mtime).isoformat(timespec="seconds")
    seconds = summary.get("seconds") if isinstance(summary.get("seconds"), int | float) else None
    epochs = ""
    if isinstance(summary.get("epochs"), int):
        done = summary.get("epochs_run", 0)
        if status in ("running", "crashed"):  # summary.json is rewritten at the end; metrics.csv every epoch
            rows = _safe_rows(path / names.METRICS)
            done = len(rows)
            seconds = sum(float(r["seconds"]) for r in rows if _is_float(r.get("seconds"))) or seconds
        epochs = f"{done}/{summary['epochs']}"
    elif isinstance(summary.get("counts"), dict) and isinstance(summary["counts"].get("total"), int):
        counts = summary["counts"]
        epochs = f"{counts.get('completed', 0)}/{counts['total']} trials" + (
            f", {counts['pruned']} pruned" if counts.get("pruned") else "")
    elif kind == "sweep" and (path / names.SWEEP_TRIALS).is_dir():
        epochs = f"{sum(1 for p in (path / names.SWEEP_TRIALS).iterdir() if p.is_dir())} trials"
    return RunInfo(str(path), kind, str(summary.get("name") or path.name), status, started, seconds, epochs,
                   run_metrics(path, summary), problem, tensorboard_dir(path, kind))


def tensorboard_dir(path: Path, kind: str) -> str | None:
    """The folder to give `tensorboard --logdir` for this run (its tb/), or for a sweep the sweep
    directory itself (its HParams experiment and every trial's curves); None when it wrote none."""
    if not (path / names.TENSORBOARD).is_dir():
        return None
    return str(path if kind == "sweep" else path / names.TENSORBOARD)


def list_runs(root: Path | str = names.DEFAULT_RUNS_ROOT) -> list[RunInfo]:
    """Every run, transfer and sweep directly under `root`, newest first.

    Args:
        root: The folder that holds run directories.

    Returns:
        One RunInfo per directory dlrun wrote: kind, name, status (`crashed` for a dead `running`
        process), start, duration, epochs and key metrics.

    Raises:
        RunDirError: `root` is not a directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise RunDirError(f"{root}: no such directory; give the folder that holds your runs (default: runs)")
    found = [info for child in root.iterdir() if child.is_dir() and (info := read_run(child)) is not None]
    return sorted(found, key=lambda info: (info.started or "", info.path), reverse=True)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings and lists as {dotted.key: leaf value}."""
    if isinstance(data, dict):
        items: list[tuple[str, Any]] = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, list):
        items = [(str(i), v) for i, v in enumerate(data)]
    else:
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in items:
        out.update(flatten(value, f"{prefix}.{key}" if prefix else key))
    return out


def _config_of(path: Path) -> dict[str, Any]:
    config = path / names.CONFIG
    try:
        data = load_value(config.read_text(encoding="utf-8")) if config.is_file() else {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RunDirError(f"{config}: unreadable config ({exc})") from None
    return flatten(data) if isinstance(data, dict) else {}


def compare_runs(a: Path | str, b: Path | str) -> dict[str, Any]:
    """Two runs side by side: the config keys that differ and every metric of either run.

    Args:
        a: The first run directory.
        b: The second run directory.

    Returns:
        {a, b (their RunInfo), config: [{key, a, b}], metrics: [{metric, a, b, delta = b - a}]}.

    Raises:
        RunDirError: either path is not a run directory, or its config is unreadable.
    """
    paths = [Path(a), Path(b)]
    infos = []
    for path in paths:
        info = read_run(path) if path.is_dir() else None
        if info is None:
            raise RunDirError(f"{path}: not a run directory (no {names.CONFIG} or {names.SUMMARY})")
        infos.append(info)
    config_a, config_b = (_config_of(p) for p in paths)
    config = [{"key": k, "a": config_a.get(k), "b": config_b.get(k)}
              for k in sorted(set(config_a) | set(config_b)) if config_a.get(k) != config_b.get(k)]
    metrics = []
    for name in sorted(set(infos[0].metrics) | set(infos[1].metrics)):
        va, vb = infos[0].metrics.get(name), infos[1].metrics.get(name)
        delta = vb - va if va is not None and vb is not None else None
        metrics.append({"metric": name, "a": va, "b": vb, "delta": delta})
    return {"a": infos[0].to_dict(), "b": infos[1].to_dict(), "config": config, "metrics": metrics}
