"""`dlrun compare`: any number of runs side by side, or a sweep's best trials.

The config keys that differ (dotted, as dlrun.config.flat spells them: layers by name and kind,
settings that do not apply left out), every final metric per run, and compare.png with their
learning curves overlaid. Reads only the run directories' records; no TensorFlow.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from dlrun.commands.runs import RunInfo, read_run
from dlrun.commands.runs_index import read_config
from dlrun.config.flat import flatten_config
from dlrun.errors import RunDirError
from dlrun.store import files, names
from dlrun.ui.compare_plot import compare_plot

DEFAULT_TOP = 5


def top_trials(sweep_dir: Path, k: int) -> list[Path]:
    """A sweep's `k` best trial directories by its ranking metric (whatever their status: a pruned
    trial ranks by its last value), best first.

    Raises:
        RunDirError: `sweep_dir` is not a sweep directory, or no trial has a value yet.
    """
    summary_path = sweep_dir / names.SUMMARY
    summary = files.read_json(summary_path) if summary_path.is_file() else {}
    metric, goal = summary.get("metric"), summary.get("goal", "max")
    ranked = []
    for trial in summary.get("trials") or []:
        value = trial.get(metric) if isinstance(trial, dict) and metric else None
        path = sweep_dir / names.SWEEP_TRIALS / str(trial.get("trial"))
        if isinstance(value, int | float) and math.isfinite(value) and path.is_dir():
            ranked.append((value, path))
    if not ranked:
        raise RunDirError(f"{sweep_dir}: no trial with a {metric or 'ranking metric'} value to rank "
                          f"(is it a sweep directory with {names.SUMMARY}?)")
    ranked.sort(key=lambda item: -item[0] if goal == "max" else item[0])
    return [path for _, path in ranked[:k]]


def _expand(runs: list[Path], top: int | None) -> list[Path]:
    """Run directories to compare: a sweep directory stands for its `top` best trials."""
    out: list[Path] = []
    for path in runs:
        if (path / names.SWEEP_SPEC).is_file() or (path / names.SWEEP_TRIALS).is_dir():
            out.extend(top_trials(path, top or DEFAULT_TOP))
        else:
            out.append(path)
    return out


def _label(path: Path, paths: list[Path]) -> str:
    """A short name per run: `trial 003` or the run folder, with its parent when two share a name."""
    in_sweep = path.parent.name == names.SWEEP_TRIALS
    label = f"trial {path.name}" if in_sweep else path.name
    if sum(p.name == path.name for p in paths) > 1:
        label = f"{(path.parent.parent if in_sweep else path.parent).name}/{label}"
    return label


def _differing(flats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = list(dict.fromkeys(k for flat in flats for k in flat))
    missing = object()
    rows = []
    for key in keys:
        values = [flat.get(key, missing) for flat in flats]
        if any(v != values[0] for v in values[1:]):
            rows.append({"key": key, "values": [None if v is missing else v for v in values]})
    return rows


def compare_runs(*runs: Path | str, top: int | None = None, plot: Path | str | None = None) -> dict[str, Any]:
    """Runs side by side: the config keys that differ, every final metric, and their learning curves.

    Args:
        runs: Run directories (two or more), or a sweep directory (its `top` best trials).
        top: How many of a sweep's trials, best first by its ranking metric (default 5).
        plot: Draw the learning curves overlaid into this PNG (None: no picture).

    Returns:
        {runs: [RunInfo as a dict, with `label`], config: [{key, values}], metrics: [{metric, values}],
        plot: the PNG's path or None}. `values` are in the order of `runs`, None where a run lacks
        the key; with exactly two runs each metric also has `delta` (second - first).

    Raises:
        RunDirError: a path is not a run directory, a config is unreadable, or fewer than two runs.
    """
    paths = _expand([Path(r) for r in runs], top)
    if len(paths) < 2:
        raise RunDirError(f"compare needs two or more runs (got {len(paths)}): give run directories, or a sweep "
                          "directory with --top K")
    infos: list[RunInfo] = []
    for path in paths:
        info = read_run(path) if path.is_dir() else None
        if info is None:
            raise RunDirError(f"{path}: not a run directory (no {names.CONFIG} or {names.SUMMARY})")
        infos.append(info)
    config = _differing([flatten_config(read_config(p)) for p in paths])
    metric_names = list(dict.fromkeys(k for info in infos for k in sorted(info.metrics)))
    metrics = []
    for name in metric_names:
        values = [info.metrics.get(name) for info in infos]
        row: dict[str, Any] = {"metric": name, "values": values}
        if len(values) == 2:
            row["delta"] = values[1] - values[0] if None not in values else None
        metrics.append(row)
    labels = [_label(path, paths) for path in paths]
    if plot is not None:
        curves = [(label, _rows(path)) for label, path in zip(labels, paths, strict=True)]
        compare_plot(curves, Path(plot), f"{len(paths)} runs")
    return {"runs": [{**info.to_dict(), "label": label} for info, label in zip(infos, labels, strict=True)],
            "config": config, "metrics": metrics, "plot": None if plot is None else str(plot)}


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        return files.read_csv(path / names.METRICS)
    except (OSError, ValueError, UnicodeDecodeError):
        return []
