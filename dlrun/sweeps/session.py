"""A running sweep's record: the outcome of every trial as events arrive, results.csv and
summary.json rewritten as trials end (at most every RECORDS_EVERY seconds), and at the end
best.yaml, the heat map and the leaderboard."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from dlrun.config import dump_config
from dlrun.data import Dataset
from dlrun.data.splits import VALIDATION_ON_TEST
from dlrun.interrupts import StopRequest
from dlrun.metrics import base_name, final_prefix
from dlrun.store import files, names
from dlrun.sweeps import board
from dlrun.sweeps.executors import TrialResult, TrialTask
from dlrun.sweeps.live import SweepDisplay
from dlrun.sweeps.plan import SweepPlan, Trial
from dlrun.sweeps.report import (
    Outcome,
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

if TYPE_CHECKING:
    from dlrun.sweeps.search import Search

RECORDS_EVERY = 1.0
"""While trials run, results.csv and summary.json are rewritten at most this often (seconds). Each rewrite
holds every trial, so after each of thousands of short trials it would cost more than the trials' own
records; the end of a sweep (completed, stopped, failed) writes them whole, and `--resume` rebuilds them
from the trials' directories whatever a killed sweep left."""


class SweepSession:
    """Receives trial events: keeps the outcomes, rewrites results.csv and summary.json as trials end."""

    def __init__(self, plan: SweepPlan, root: Path, reporter: Reporter, seconds_before: float, data: Dataset,
                 search: Search | None = None):
        self.plan, self.root, self.jobs, self.reporter, self.search = plan, root, 1, reporter, search
        self.outcomes = outcomes_for(plan, root / names.SWEEP_TRIALS, data.num_classes)
        self.validation, self.final = data.validation(), final_prefix(data.has_test)
        self.threads: dict[str, Any] = {}
        self.stop: StopRequest | None = None  # set while trials run: asked to stop after too many failures
        self.failure: str | None = None  # why the sweep stopped early, if it did
        self.failed_in_a_row = 0
        self.classes = data.num_classes
        self.display = SweepDisplay(reporter, plan.planned, sum(o.final for o in self.outcomes.values()))
        self.t0, self.seconds_before = time.monotonic(), seconds_before
        self.storage: str | None = None  # why the disk stopped the sweep (full or read-only)
        self.reported: set[str] = set()  # trials that reported an epoch to the pruner in this process
        self.written = float("-inf")  # when results.csv and summary.json were last rewritten (monotonic)
        self.heatmap: str | None = None  # the heat map's path, once the end of the sweep drew it
        for outcome in self.outcomes.values():  # ended while the sweep process was gone: the study learns it now
            if outcome.final:
                self._tell(outcome.trial.id)

    def add(self, trial: Trial) -> None:
        """A trial the search engine just asked for (pending until it starts)."""
        self.outcomes[trial.id] = Outcome(trial, self.root / names.SWEEP_TRIALS / trial.id, classes=self.classes)

    def started(self, task: TrialTask) -> None:
        """A trial was handed to a worker."""
        self.outcomes[task.trial_id].status = "running"
        self._show(None)

    def epoch_ended(self, trial_id: str, epoch: int, row: dict[str, Any]) -> bool:
        """A trial completed an epoch: keep it going (True) or prune it (False), as the sweep's pruner
        (sweep.prune) judges its sweep.metric against the other trials' at the same epoch."""
        if self.search is None or self.plan.base.config.sweep.prune.method == "none":  # type: ignore[union-attr]
            return True
        if trial_id not in self.reported and epoch > 1:  # resumed: epochs a kill kept from the study go in first
            for earlier in files.read_csv(self.root / names.SWEEP_TRIALS / trial_id / names.METRICS)[:epoch - 1]:
                self.search.report(trial_id, int(earlier["epoch"]), _number(earlier.get(self.plan.metric)))
        self.reported.add(trial_id)
        return not self.search.report(trial_id, epoch, row.get(self.plan.metric))

    def _tell(self, trial_id: str) -> None:
        if self.search is not None:
            outcome = self.outcomes[trial_id]
            self.search.tell(trial_id, outcome.status, outcome.value(self.plan.metric))

    def finished(self, result: TrialResult) -> None:
        """A trial ended (or stopped): record it, print a line, rewrite the results (see RECORDS_EVERY)."""
        outcome = self.outcomes[result.trial_id]
        outcome.refresh(result.status, result.summary)
        board.trial_ended(self.root, result.trial_id, outcome.status)
        self._tell(result.trial_id)
        if result.storage and self.stop is not None:  # every later write would fail too: stop, keep what is done
            self.storage, self.stop.requested = result.storage, True
        value = outcome.value(self.plan.metric) if outcome.status in ("completed", "pruned") else None
        shown = f"{self.plan.metric} {value:.4f}" if value is not None else ""
        if outcome.status == "pruned":
            shown += f" @{outcome.summary.get('pruned_epoch', '?')}"
        params = " ".join(f"{k}={format_value(v)}" for k, v in outcome.trial.params.items())
        seconds = outcome.summary.get("seconds")
        self._show(f"trial {result.trial_id} {result.status:<11} {shown:<22} {params}"
                   + (f"  ({seconds:.1f}s)" if isinstance(seconds, int | float) else "")
                   + (f"  {outcome.note}" if outcome.note else ""))
        self._count_failure(result)
        if time.monotonic() - self.written >= RECORDS_EVERY or self.failure or result.storage:
            self.write("running")

    def _count_failure(self, result: TrialResult) -> None:
        """Count failed trials in a row (a completed or diverged trial is a result and resets the count);
        show the traceback under DLRUN_DEBUG; ask the sweep to stop at sweep.max_failures."""
        if result.status in ("completed", "diverged", "pruned"):
            self.failed_in_a_row = 0
        if result.status != "failed":
            return
        self.failed_in_a_row += 1
        error = self.root / names.SWEEP_TRIALS / result.trial_id / names.ERROR
        if self.reporter.debug and error.is_file():
            self.reporter.err.print(f"trial {result.trial_id} failed:\n{error.read_text()}", markup=False)
        limit = self.plan.base.config.sweep.max_failures if self.plan.base.config.sweep else 0
        if limit and self.failed_in_a_row >= limit and self.failure is None:
            self.failure = (f"{self.failed_in_a_row} trials in a row failed (the last, trial {result.trial_id}: "
                            f"{result.summary.get('error', 'unknown error')}; traceback in {error})")
            if self.stop is not None:
                self.stop.requested = True

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
        files.write_csv(self.root / names.SWEEP_RESULTS, result_columns(self.plan, self.final),
                         [result_row(o) for o in items])
        summary = sweep_summary(self.plan, self.root, self.outcomes, status, self.seconds(), self.jobs)
        summary.update(validation=self.validation, threads=self.threads, pid=os.getpid(), host=socket.gethostname())
        if self.failure:
            summary["stopped"] = self.failure
        if self.heatmap:
            summary["heatmap"] = self.heatmap
        files.write_json(self.root / names.SUMMARY, summary)
        self.written = time.monotonic()
        return summary

    def finish(self, reporter: Reporter) -> dict[str, Any]:
        """Final results, best.yaml, heat map and the leaderboard; returns the summary."""
        for o in self.outcomes.values():
            if o.status == "running":
                o.status = "interrupted"
        items = list(self.outcomes.values())
        # stopped before the search engine asked for every trial: the rest are still to come
        cut_short = self.stop is not None and self.stop.requested and len(items) < self.plan.planned
        status = "failed" if self.failure else "completed" if all(o.final for o in items) and not cut_short \
            else "interrupted"
        best = best_of(items, self.plan.metric, self.plan.goal)
        if best is not None:
            head = (f"# Best trial of sweep {self.root}: trial {best.trial.id} "
                    f"({', '.join(f'{k}={format_value(v)}' for k, v in best.trial.params.items())}), "
                    f"{self.plan.metric} {best.value(self.plan.metric):.4f}.\n"
                    f"# Reproduce it with: dlrun train {self.root / names.SWEEP_BEST}\n")
            files.write_text(self.root / names.SWEEP_BEST, head + dump_config(best.trial.config.config))
        if self.plan.mode == "grid" and len(self.plan.keys) <= 2:  # a refined grid: its points as rows, columns
            from dlrun.ui.plots import sweep_heatmap

            row_key, rows, col_key, cols, cells = heat_cells(self.plan, self.outcomes)
            title = (f"{self.plan.base.config.name}: {self.plan.metric} by trial ({status})\n"
                     "red, hatched: diverged (loss became NaN/inf)"
                     + ("; grey, crossed: pruned (value at that epoch)" if any(o.status == "pruned" for o in items)
                        else ""))
            sweep_heatmap(self.root / names.SWEEP_HEATMAP, row_key, rows, col_key, cols, cells, self.plan.metric,
                          title, self.plan.goal)
            self.heatmap = str(self.root / names.SWEEP_HEATMAP)
        # the summary last: a sweep that says it ended has every record (a full disk stops it before)
        summary = self.write(status)
        if not reporter.json_mode:
            on = (f"ranked on {self.plan.metric}" + (", measured on the test split (data.validation: test)"
                                                     if self.validation == VALIDATION_ON_TEST else ""))
            beside = self.final + base_name(self.plan.metric)
            table = leaderboard(self.plan, items, f"{self.plan.base.config.name} sweep — {on} — {self.root}",
                                beside if beside != self.plan.metric else None)
            # A terminal has its own width; a file or a pipe gets one wide enough for the notes.
            out = reporter.out if reporter.out.is_terminal else Console(highlight=False, width=160)
            out.print(table)
        return summary


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None
