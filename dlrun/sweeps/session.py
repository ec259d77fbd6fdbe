"""A running sweep's record: the outcome of every trial as events arrive, results.csv and
summary.json rewritten after each, and at the end best.yaml, the heat map and the leaderboard."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console

from dlrun.config import dump_config
from dlrun.interrupts import StopRequest
from dlrun.store import files, names
from dlrun.sweeps import board
from dlrun.sweeps.executors import TrialResult, TrialTask
from dlrun.sweeps.live import SweepDisplay
from dlrun.sweeps.plan import SweepPlan
from dlrun.sweeps.report import (
    best_of,
    format_value,
    heat_cells,
    leaderboard,
    outcomes_for,
    result_columns,
    result_row,
    sweep_summary,
)
from dlrun.ui.console import Reporter


class SweepSession:
    """Receives trial events: keeps the outcomes, rewrites results.csv and summary.json after each."""

    def __init__(self, plan: SweepPlan, root: Path, reporter: Reporter, seconds_before: float,
                 classes: int | None):
        self.plan, self.root, self.jobs = plan, root, 1
        self.outcomes = outcomes_for(plan, root / names.SWEEP_TRIALS, classes)
        self.display = SweepDisplay(reporter, len(plan.trials), sum(o.final for o in self.outcomes.values()))
        self.t0, self.seconds_before = time.monotonic(), seconds_before
        self.stop: StopRequest | None = None  # set while trials run
        self.storage: str | None = None  # why the disk stopped the sweep (full or read-only)

    def started(self, task: TrialTask) -> None:
        """A trial was handed to a worker."""
        self.outcomes[task.trial_id].status = "running"
        self._show(None)

    def finished(self, result: TrialResult) -> None:
        """A trial ended (or stopped): record it, print a line, rewrite the results."""
        outcome = self.outcomes[result.trial_id]
        outcome.refresh(result.status, result.summary)
        board.trial_ended(self.root, result.trial_id, outcome.status)
        if result.storage and self.stop is not None:  # every later write would fail too: stop, keep what is done
            self.storage, self.stop.requested = result.storage, True
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
        files.write_csv(self.root / names.SWEEP_RESULTS, result_columns(self.plan),
                         [result_row(o) for o in items])
        summary = sweep_summary(self.plan, self.root, self.outcomes, status, self.seconds(), self.jobs)
        files.write_json(self.root / names.SUMMARY, summary)
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
                    f"# Reproduce it with: dlrun train {self.root / names.SWEEP_BEST}\n")
            files.write_text(self.root / names.SWEEP_BEST, head + dump_config(best.trial.config.config))
        summary = self.write(status)
        if self.plan.mode == "grid" and len(self.plan.keys) <= 2:
            from dlrun.ui.plots import sweep_heatmap

            row_key, rows, col_key, cols, cells = heat_cells(self.plan, self.outcomes)
            title = (f"{self.plan.base.config.name}: {self.plan.metric} by trial ({status})\n"
                     "red, hatched: diverged (loss became NaN/inf)")
            sweep_heatmap(self.root / names.SWEEP_HEATMAP, row_key, rows, col_key, cols, cells,
                          self.plan.metric, title, self.plan.goal)
            summary["heatmap"] = str(self.root / names.SWEEP_HEATMAP)
            files.write_json(self.root / names.SUMMARY, summary)
        if not reporter.json_mode:
            table = leaderboard(self.plan, items, f"{self.plan.base.config.name} sweep — {self.root}")
            # A terminal has its own width; a file or a pipe gets one wide enough for the notes.
            out = reporter.out if reporter.out.is_terminal else Console(highlight=False, width=160)
            out.print(table)
        return summary
