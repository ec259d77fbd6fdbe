"""`dlrun sweep`: many trainings over a parameter space (grid or zip), durable and resumable.

Layout of a sweep directory (names in rundir.py):
  sweep.yaml      the resolved base config with its parameter space (`dlrun sweep` runs it again)
  trials/NNN/     one full run directory per trial, exactly as `dlrun train` writes it
  results.csv     one row per trial; summary.json (counts, best, seconds); best.yaml; heatmap.png

A config error stops the sweep before anything is written. A diverged or failed trial is recorded
and the sweep goes on. Ctrl-C / SIGTERM stops after the trials in flight saved their last epoch;
`--resume` runs only trials that have not ended, from their checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from dlrun import checks, rundir
from dlrun.config import config_sha256, dump_config, load_config
from dlrun.console import Reporter
from dlrun.data import Dataset, load_dataset
from dlrun.errors import ConfigError, Interrupted, Problem, SweepError
from dlrun.interrupts import graceful_stop
from dlrun.sweep_exec import TrialExecutor, TrialResult, TrialTask, make_executor
from dlrun.sweep_live import SweepDisplay
from dlrun.sweep_plan import SweepPlan, plan_sweep
from dlrun.sweep_report import (
    best_of,
    format_value,
    heat_cells,
    leaderboard,
    outcomes_for,
    result_columns,
    result_row,
    sweep_summary,
)


def load_sweep_data(plan: SweepPlan, reporter: Reporter) -> tuple[dict[str, Dataset], dict[str, str]]:
    """Load and preprocess each distinct data config once (one, unless data keys are swept), and run
    the data checks of every trial. Returns (data sets by key, data key of each trial)."""
    datasets: dict[str, Dataset] = {}
    key_of: dict[str, str] = {}
    for trial in plan.trials:
        cfg = trial.config.config
        spec = json.dumps({"data": cfg.data.model_dump(mode="json"), "task": cfg.task, "seed": cfg.seed},
                          sort_keys=True)
        key = hashlib.sha256(spec.encode()).hexdigest()[:16]
        if key not in datasets:
            datasets[key] = load_dataset(cfg.data, cfg.task, cfg.seed)
            for note in datasets[key].notes:
                reporter.warn(note)
        data = datasets[key]
        try:
            checks.check_against_data(trial.config, data.input_shape, data.num_classes)
        except ConfigError as exc:
            shown = ", ".join(f"{k}={format_value(v)}" for k, v in trial.params.items())
            raise ConfigError([Problem(p.origin, p.key, f"{p.message} (trial {trial.id}: {shown})")
                               for p in exc.problems]) from None
        key_of[trial.id] = key
    return datasets, key_of


def _create(plan: SweepPlan, runs_root: str | Path, sweep_dir: str | Path | None) -> Path:
    root = rundir.create_run_dir(f"{plan.base.config.name}-sweep", runs_root, sweep_dir).path
    rundir.write_text(root / rundir.SWEEP_SPEC, plan.spec_yaml())
    (root / rundir.SWEEP_TRIALS).mkdir()
    for trial in plan.trials:
        run = rundir.create_run_dir(trial.id, explicit=root / rundir.SWEEP_TRIALS / trial.id)
        rundir.write_text(run / rundir.CONFIG, dump_config(trial.config.config))
    return root


def _reopen(resume: str | Path) -> tuple[Path, SweepPlan]:
    root = Path(resume)
    spec = root / rundir.SWEEP_SPEC
    if not spec.is_file():
        raise SweepError(f"{root}: not a sweep directory (no {rundir.SWEEP_SPEC}); expected one written by "
                         "`dlrun sweep`")
    plan = plan_sweep(spec)
    for trial in plan.trials:
        path = root / rundir.SWEEP_TRIALS / trial.id
        if not (path / rundir.CONFIG).is_file():
            rundir.create_run_dir(trial.id, explicit=path)
            rundir.write_text(path / rundir.CONFIG, dump_config(trial.config.config))
        elif config_sha256(load_config(path / rundir.CONFIG).config) != config_sha256(trial.config.config):
            raise SweepError(f"{path / rundir.CONFIG} no longer matches trial {trial.id} of {spec}; a "
                             "resumed sweep keeps its trials' configs. Restore it, or start a new sweep.")
    return root, plan


class _Session:
    """Receives trial events: keeps the outcomes, rewrites results.csv and summary.json after each."""

    def __init__(self, plan: SweepPlan, root: Path, reporter: Reporter, seconds_before: float,
                 classes: int | None):
        self.plan, self.root, self.jobs = plan, root, 1
        self.outcomes = outcomes_for(plan, root / rundir.SWEEP_TRIALS, classes)
        self.display = SweepDisplay(reporter, len(plan.trials), sum(o.final for o in self.outcomes.values()))
        self.t0, self.seconds_before = time.monotonic(), seconds_before

    def started(self, task: TrialTask) -> None:
        """A trial was handed to a worker."""
        self.outcomes[task.trial_id].status = "running"
        self._show(None)

    def finished(self, result: TrialResult) -> None:
        """A trial ended (or stopped): record it, print a line, rewrite the results."""
        outcome = self.outcomes[result.trial_id]
        outcome.refresh(result.status, result.summary)
        value = outcome.value(self.plan.metric) if outcome.status == "completed" else None
        shown = f"{self.plan.metric} {value:.4f}" if value is not None else ""
        params = " ".join(f"{k}={format_value(v)}" for k, v in outcome.trial.params.items())
        seconds = outcome.summary.get("seconds")
        self._show(f"trial {result.trial_id} {result.status:<11} {shown:<22} {params}"
                   + (f"  ({seconds:.1f}s)" if isinstance(seconds, int | float) else "")
                   + (f"  {outcome.note}" if outcome.note else ""))
        self.write("running")

    def _show(self, line: str | None) -> None:
        items = list(self.outcomes.values())
        done = sum(o.final for o in items)
        best = best_of(items, self.plan.metric, self.plan.goal)
        best_text = f"{best.trial.id} ({best.value(self.plan.metric):.4f})" if best else "—"
        self.display.update(done, sum(o.status == "running" for o in items), best_text, line)

    def seconds(self) -> float:
        return self.seconds_before + time.monotonic() - self.t0

    def write(self, status: str) -> dict[str, Any]:
        """Rewrite results.csv and summary.json (atomically) with what is known now."""
        items = list(self.outcomes.values())
        rundir.write_csv(self.root / rundir.SWEEP_RESULTS, result_columns(self.plan),
                         [result_row(o) for o in items])
        summary = sweep_summary(self.plan, self.root, self.outcomes, status, self.seconds(), self.jobs)
        rundir.write_json(self.root / rundir.SUMMARY, summary)
        return summary

    def finish(self, reporter: Reporter) -> dict[str, Any]:
        """Final results, best.yaml, heat map and the leaderboard; returns the summary."""
        for o in self.outcomes.values():
            if o.status == "running":
                o.status = "interrupted"
        items = list(self.outcomes.values())
        status = "completed" if all(o.final for o in items) else "interrupted"
        best = best_of(items, self.plan.metric, self.plan.goal)
        if best is not None:
            head = (f"# Best trial of sweep {self.root}: trial {best.trial.id} "
                    f"({', '.join(f'{k}={format_value(v)}' for k, v in best.trial.params.items())}), "
                    f"{self.plan.metric} {best.value(self.plan.metric):.4f}.\n"
                    f"# Reproduce it with: dlrun train {self.root / rundir.SWEEP_BEST}\n")
            rundir.write_text(self.root / rundir.SWEEP_BEST, head + dump_config(best.trial.config.config))
        summary = self.write(status)
        if self.plan.mode == "grid" and len(self.plan.keys) <= 2:
            from dlrun.plots import sweep_heatmap

            row_key, rows, col_key, cols, cells = heat_cells(self.plan, self.outcomes)
            title = (f"{self.plan.base.config.name}: {self.plan.metric} by trial ({status})\n"
                     "red, hatched: diverged (loss became NaN/inf)")
            sweep_heatmap(self.root / rundir.SWEEP_HEATMAP, row_key, rows, col_key, cols, cells,
                          self.plan.metric, title, self.plan.goal)
            summary["heatmap"] = str(self.root / rundir.SWEEP_HEATMAP)
            rundir.write_json(self.root / rundir.SUMMARY, summary)
        if not reporter.json_mode:
            table = leaderboard(self.plan, items, f"{self.plan.base.config.name} sweep — {self.root}")
            # A terminal has its own width; a file or a pipe gets one wide enough for the notes.
            out = reporter.out if reporter.out.is_terminal else Console(highlight=False, width=160)
            out.print(table)
        return summary


def sweep(config: str | Path | None, overrides: list[str] | None = None, lr: str | None = None,
          lam: str | None = None, mode: str | None = None, jobs: int | None = None,
          sweep_dir: str | Path | None = None, resume: str | Path | None = None,
          reporter: Reporter | None = None, *, runs_root: str | Path = rundir.DEFAULT_RUNS_ROOT,
          executor: TrialExecutor | None = None) -> dict[str, Any]:
    """Run (or with `resume`, continue) a sweep; returns its summary.

    Raises ConfigError before anything is written when the space or any trial's config is invalid,
    and Interrupted (after saving every trial's state) when stopped by Ctrl-C / SIGTERM.
    """
    reporter = reporter or Reporter(live=False)
    if resume is not None:
        if config is not None or overrides or lr or lam or mode or sweep_dir:
            raise SweepError("--resume continues a sweep with its own sweep.yaml; drop CONFIG, --set, --lr, "
                             "--lambda, --mode and --sweep-dir")
        root, plan = _reopen(resume)
    elif config is None:
        raise SweepError("give a CONFIG to sweep, or --resume SWEEP_DIR")
    else:
        plan = plan_sweep(config, overrides, lr, lam, mode)
    datasets, key_of = load_sweep_data(plan, reporter)
    if resume is None:
        root = _create(plan, runs_root, sweep_dir)
    previous = rundir.read_json(root / rundir.SUMMARY) if (root / rundir.SUMMARY).exists() else {}
    first = next(iter(datasets.values()))
    session = _Session(plan, root, reporter, float(previous.get("seconds", 0.0)), first.num_classes)
    tasks = [TrialTask(t.id, root / rundir.SWEEP_TRIALS / t.id, key_of[t.id])
             for t in plan.trials if not session.outcomes[t.id].final]
    executor = executor or make_executor(jobs, len(tasks))
    session.jobs = executor.jobs
    reporter.info(f"sweep directory: [bold]{root}[/bold]  ({len(plan.trials)} trials, {plan.mode} over "
                  f"{', '.join(plan.keys)}; {first.describe()}; jobs {executor.jobs})")
    if resume is not None:
        reporter.info(f"resuming: {len(plan.trials) - len(tasks)} of {len(plan.trials)} trials ended before; "
                      f"{len(tasks)} to run")
    session.write("running")
    with session.display, graceful_stop() as stop:
        try:
            executor.run(tasks, datasets, session, stop)
        except KeyboardInterrupt:  # a second Ctrl-C outside training: the state on disk is still whole
            stop.requested = True
    summary = session.finish(reporter)
    if summary["status"] != "completed":
        left = len(plan.trials) - sum(o.final for o in session.outcomes.values())
        raise Interrupted(f"sweep interrupted with {left} trial(s) left; "
                          f"resume with: dlrun sweep --resume {root}")
    return summary
