"""`dlrun runs`: list and query run and sweep directories with their status and metrics.

Reads only what runs leave on disk (summary.json, metrics.csv, config.yaml); no TensorFlow.
Directories written by other commands (sweeps, transfers) are read generically: whatever
summary.json they have supplies status, times and metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from dlrun.commands import runs_query as query
from dlrun.commands.runs_index import flat_configs
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


def list_runs(root: Path | str = names.DEFAULT_RUNS_ROOT, trials: bool = False) -> list[RunInfo]:
    """Every run, transfer and sweep directly under `root`, newest first.

    Args:
        root: The folder that holds run directories.
        trials: Also list each sweep's trials (kind `trial`, named SWEEP/TRIAL), after their sweep.

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
    found.sort(key=lambda info: (info.started or "", info.path), reverse=True)
    return [entry for info in found for entry in [info, *(sweep_trials(info) if trials else [])]]


def sweep_trials(sweep: RunInfo) -> list[RunInfo]:
    """A sweep's trials (kind `trial`, named SWEEP/TRIAL), in trial order; [] for anything else."""
    folder = Path(sweep.path) / names.SWEEP_TRIALS
    if sweep.kind != "sweep" or not folder.is_dir():
        return []
    out = []
    for child in sorted(p for p in folder.iterdir() if p.is_dir()):
        info = read_run(child)
        if info is not None:
            info.kind, info.name = "trial", f"{sweep.name}/{child.name}"
            out.append(info)
    return out


def query_runs(root: Path | str = names.DEFAULT_RUNS_ROOT, where: Sequence[str] = (), sort: str | None = None,
               columns: Sequence[str] | None = None, limit: int | None = None,
               trials: bool = False) -> dict[str, Any]:
    """The runs under `root` that pass every `where` expression, ordered by `sort`.

    Args:
        root: The folder that holds run directories.
        where: Expressions KEY OP VALUE (OP: = != < <= > >= ~) on a metric, a run field (name, kind,
            status, path, started, seconds, epochs) or a dotted config key (optimizer.name).
        sort: KEY (ascending) or -KEY (descending); runs without the key come last. Default: newest first.
        columns: Keys whose values each run reports under `values` (default: the keys of `where` and `sort`).
        limit: At most this many runs.
        trials: Include each sweep's trials.

    Returns:
        {runs_root, columns, runs: [RunInfo as a dict, plus `values`: {column: value or None}]}.

    Raises:
        QueryError: an expression that cannot be parsed, or a key no run has.
        RunDirError: `root` is not a directory.
    """
    conditions = [query.parse_where(text) for text in where]
    order = query.parse_sort(sort) if sort else None
    shown = list(columns) if columns is not None else list(dict.fromkeys(
        [c.key for c in conditions] + ([order[0]] if order else [])))
    origin = {**{k: f"--columns {k}" for k in shown}, **({order[0]: f"--sort {sort}"} if order else {}),
              **{c.key: f"--where {c.text!r}" for c in conditions}}
    infos = list_runs(root, trials)
    metric_names = {name for info in infos for name in info.metrics}
    wanted = [k for k in origin if k not in query.RUN_FIELDS and k not in metric_names]
    configs = flat_configs([Path(info.path) for info in infos]) if wanted else {}
    rows = [{**info.to_dict(), "config": configs.get(Path(info.path), {})} for info in infos]
    query.check_keys(rows, list(origin), origin)
    kept = query.query(rows, conditions, order, limit)
    return {"runs_root": str(root), "columns": shown, "runs": [
        {**{k: v for k, v in row.items() if k != "config"},
         "values": {k: query.cell(query.value_of(row, k)) for k in shown}} for row in kept]}
