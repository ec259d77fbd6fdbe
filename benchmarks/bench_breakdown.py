"""Where the seconds of a sweep go: one sweep run in this process with timers around dlrun's own
functions (exclusive time: a timed function nested in another counts once, in the inner one).

Per trial: build (seeded_model: the model and its compile; with a lent model also copying the trial's initial
state into it, engine/reuse.py), trace (the first epoch's extra time over the
median epoch: tf.function tracing), epochs (fit_epochs minus the rest), evaluation (test_metrics), files
(checkpoints, metrics.csv, summary.json, weights and .keras), plots (history.png), the pruner (the sweep
process' judgement after each epoch). Per sweep: start-up (importing dlrun and TensorFlow), data
(load_sweep_data), the end (results, heat map, leaderboard) and scheduling (everything else: the
executor, results.csv after each trial, the search engine's asks).
"""

from __future__ import annotations

import contextlib
import csv
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TIMED = {  # module, function -> bucket
    ("dlrun.engine.fit", "seeded_model"): "build",
    ("dlrun.engine.reuse", "_lend"): "build",
    ("dlrun.engine.reuse", "TrialModels.model"): "build",
    ("dlrun.engine.run", "fit_epochs"): "epochs",
    ("dlrun.engine.run", "test_metrics"): "evaluation",
    ("dlrun.engine.run", "save_checkpoint"): "files",
    ("dlrun.engine.run", "write_metrics"): "files",
    ("dlrun.engine.run", "save_model"): "files",
    ("dlrun.engine.run", "write_run_summary"): "files",
    ("dlrun.engine.run", "history_plot"): "plots",
    ("dlrun.sweeps.session", "SweepSession.epoch_ended"): "pruner",
    ("dlrun.sweeps.session", "SweepSession.finish"): "sweep end",
    ("dlrun.sweeps.run", "load_sweep_data"): "data",  # patched where the sweep calls it
    ("dlrun.sweeps.executors.inprocess", "execute_trial"): "trial other",
}


class Timers:
    """Exclusive seconds per bucket."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.stack: list[float] = []  # time spent in timed children of each open call

    def wrap(self, bucket: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            self.stack.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                children = self.stack.pop()
                self.seconds[bucket] += spent - children
                if self.stack:
                    self.stack[-1] += spent
        return timed


def install(timers: Timers) -> Callable[[], None]:
    """Put the timers around the functions of TIMED; returns what takes them off again."""
    import importlib

    undo = []
    for (module_name, attr), bucket in TIMED.items():
        module = importlib.import_module(module_name)
        owner, name = (module, attr) if "." not in attr else (getattr(module, attr.split(".")[0]), attr.split(".")[1])
        original = getattr(owner, name)
        setattr(owner, name, timers.wrap(bucket, original))
        undo.append((owner, name, original))
    return lambda: [setattr(owner, name, original) for owner, name, original in undo] and None


def breakdown(config: dict[str, Any], background_plots: bool = True) -> dict[str, Any]:
    """Run `config`'s sweep in this process (one job) and say where its seconds went; with
    `background_plots` False, trial plots are drawn in the trial as before (the comparison)."""
    t0 = time.perf_counter()
    from dlrun.engine import backend

    backend.keras()
    import dlrun.sweeps.run as sweep_run
    from dlrun.sweeps.executors import SequentialExecutor
    from dlrun.ui.console import Reporter

    startup = time.perf_counter() - t0
    timers = Timers()
    uninstall = install(timers)
    import dlrun.sweeps.executors.inprocess as inprocess

    drawn = inprocess.drawn_in_background
    if not background_plots:
        inprocess.drawn_in_background = contextlib.nullcontext  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="bench-breakdown-") as name:
        path = Path(name) / "sweep.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        start = time.perf_counter()
        try:
            summary = sweep_run.sweep(path, sweep_dir=Path(name) / "s", executor=SequentialExecutor(),
                                      reporter=Reporter(json_mode=True, live=False))  # stdout: the JSON only
        finally:
            inprocess.drawn_in_background = drawn
            uninstall()
        total = time.perf_counter() - start
        trace = 0.0
        for trial in sorted((Path(name) / "s" / "trials").iterdir()):
            with open(trial / "metrics.csv") as fh:
                rows = [float(row["seconds"]) for row in csv.DictReader(fh)]
            if len(rows) > 1:
                trace += max(0.0, rows[0] - statistics.median(rows[1:]))
    seconds = dict(timers.seconds)
    trials = len(summary["trials"])
    epochs = sum(t["epochs_run"] or 0 for t in summary["trials"])
    seconds["trace"] = trace
    seconds["epochs"] = seconds.get("epochs", 0.0) - trace
    in_trials = sum(v for k, v in seconds.items() if k not in ("data", "sweep end"))
    per_trial = {k: round(v / trials, 3) for k, v in sorted(seconds.items()) if k not in ("data", "sweep end")}
    return {"breakdown": "one pruned sweep, in-process, jobs 1", "background_plots": background_plots,
            "trials": trials, "epochs_run": epochs,
            "counts": summary["counts"], "sweep_seconds": round(total, 2), "startup_seconds": round(startup, 2),
            "data_seconds": round(seconds.get("data", 0.0), 2),
            "sweep_end_seconds": round(seconds.get("sweep end", 0.0), 2),
            "in_trials_seconds": round(in_trials, 2),
            "scheduling_seconds": round(total - in_trials - seconds.get("data", 0.0) - seconds.get("sweep end", 0.0),
                                        2),
            "per_trial_seconds": per_trial,
            "per_epoch_seconds": round(seconds.get("epochs", 0.0) / max(1, epochs), 3)}
