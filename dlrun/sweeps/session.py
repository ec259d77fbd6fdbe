"""A running sweep's record: the outcome of every trial as events arrive, results.csv and
summary.json rewritten as trials end (at most every RECORDS_EVERY seconds), and at the end
best.yaml, the heat map and the leaderboard."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from dlrun.data import Dataset
from dlrun.data.splits import VALIDATION_ON_TEST
from dlrun.errors import RunDirError
from dlrun.interrupts import StopRequest
from dlrun.metrics import base_name, final_prefix
from dlrun.store import files, names
from dlrun.sweeps import board
from dlrun.sweeps.best import write_point_config
from dlrun.sweeps.executors import TrialResult, TrialTask
from dlrun.sweeps.front import Front
from dlrun.sweeps.leaderboard import leaderboard, shown_score
from dlrun.sweeps.live import SweepDisplay
from dlrun.sweeps.pareto import entry_values, is_rung, rung_keeps, seeds_values
from dlrun.sweeps.plan import SweepPlan, Trial
from dlrun.sweeps.report import (
    Entry,
    Outcome,
    best_of,
    entries,
    format_value,
    heat_cells,
    outcomes_for,
    result_columns,
    result_row,
    sweep_summary,
)
from dlrun.sweeps.scoring import mean_std
from dlrun.ui.console import Reporter

if TYPE_CHECKING:
    from dlrun.sweeps.search import Search
    from dlrun.tracking.live import SweepMirror

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
        self.outcomes = outcomes_for(plan, root / names.SWEEP_TRIALS)
        self.validation, self.final = data.validation(), final_prefix(data.has_test)
        self.threads: dict[str, Any] = {}
        self.stop: StopRequest | None = None  # set while trials run: asked to stop after too many failures
        self.tracker: SweepMirror | None = None  # set when the sweep is tracked (MLflow)
        self.failure: str | None = None  # why the sweep stopped early, if it did
        self.failed_in_a_row = 0
        self.display = SweepDisplay(reporter, plan.planned, sum(o.final for o in self.outcomes.values()))
        self.t0, self.seconds_before = time.monotonic(), seconds_before
        self.storage: str | None = None  # why the disk stopped the sweep (full or read-only)
        self.reported: set[str] = set()  # trials that reported an epoch to the pruner in this process
        self.verdicts: dict[tuple[str, int], bool] = {}  # (point, epoch) -> the pruner said go on
        self.written = float("-inf")  # when results.csv and summary.json were last rewritten (monotonic)
        self.heatmap: str | None = None  # the heat map's path, once the end of the sweep drew it
        self.pareto: dict[str, Any] | None = None  # the Pareto records (several objectives), once the end wrote them
        for point in plan.point_ids():  # ended while the sweep process was gone: the study learns it now
            self._tell(point)

    def add(self, trial: Trial) -> None:
        """A trial the search engine just asked for (pending until it starts)."""
        self.outcomes[trial.id] = Outcome(trial, self.root / names.SWEEP_TRIALS / trial.id, scoring=self.plan.scoring)

    def entries(self, ids: list[str] | None = None) -> list[Entry]:
        """What is ranked (trials, or points of several seeds), of the trials `ids` or all."""
        return entries(self.plan, self.outcomes, ids)

    def _point(self, point: str) -> Entry:
        [entry] = entries(self.plan, self.outcomes, [t.id for t in self.plan.seeds_of(point)])
        return entry

    def started(self, task: TrialTask) -> None:
        """A trial was handed to a worker."""
        self.outcomes[task.trial_id].status = "running"
        self._show(None)

    @property
    def prunes(self) -> bool:
        """Whether a pruner judges this sweep's trials (a search with sweep.prune); else every epoch's verdict
        is "go on" and a trial need not wait for it (TrialTask.judged)."""
        return self.search is not None and self.plan.base.config.sweep.prune.method != "none"  # type: ignore[union-attr]

    def epoch_ended(self, trial_id: str, epoch: int, row: dict[str, Any]) -> bool:
        """A trial completed an epoch: keep it going (True) or prune it (False), as the sweep's pruner
        (sweep.prune) judges its running score (scoring.py: the value of this epoch, or the best so far)
        against the other trials' at the same epoch. With sweep.repeats, the pruner judges a point: the
        mean of its seeds' running scores at an epoch, once every seed reached it (the last seed there
        asks); a seed reaching an epoch first goes on, and every seed of a pruned point stops at its next
        epoch (seeds that ended before keep their result)."""
        if not self.prunes:
            return True
        outcome = self.outcomes[trial_id]
        outcome.rows = [*files.read_csv(outcome.run_dir / names.METRICS)[:epoch - 1], row]
        point = outcome.trial.point_id
        seeds = [self.outcomes[t.id] for t in self.plan.seeds_of(point)]
        if any(s.status == "pruned" for s in seeds) or self.verdicts.get((point, epoch)) is False:
            return False  # the point was pruned (at an earlier epoch, or at this one for another seed)
        if (point, epoch) in self.verdicts:
            return True
        for seed in seeds:
            if seed is not outcome and len(seed.rows) < epoch:  # a running seed's rows so far (its own file)
                seed.rows = files.read_csv(seed.run_dir / names.METRICS)
        if any(s.status in ("diverged", "failed") for s in seeds) or any(len(s.rows) < epoch for s in seeds):
            return True  # not every seed is here yet (or the point has no mean): go on
        if self.plan.objectives:
            self.verdicts[(point, epoch)] = self._keeps_on_front(point, epoch)
            return self.verdicts[(point, epoch)]
        if trial_id not in self.reported and epoch > 1:  # resumed: epochs a kill kept from the study go in first
            for earlier in range(1, epoch):
                self.search.report(point, earlier, _mean_at(seeds, earlier))
        self.reported.add(trial_id)
        value = _mean_at(seeds, epoch)
        self.verdicts[(point, epoch)] = not self.search.report(point, epoch, value)
        return self.verdicts[(point, epoch)]

    def _keeps_on_front(self, point: str, epoch: int) -> bool:
        """Several objectives: successive halving on non-dominated rank (pareto.rung_keeps) at the rungs
        min_epochs * reduction^k, among every point whose seeds reached that epoch, from their epoch rows
        (metrics.csv: the records a resumed sweep judges from too)."""
        prune = self.plan.base.config.sweep.prune  # type: ignore[union-attr]
        if not is_rung(epoch, prune.min_epochs, prune.reduction):
            return True
        at_rung: dict[str, list[float]] = {}
        for other in self.plan.point_ids():
            seeds = [self.outcomes[t.id] for t in self.plan.seeds_of(other)]
            for seed in seeds:  # another running trial's rows so far (parallel jobs)
                if seed.status == "running" and len(seed.rows) < epoch and other != point:
                    seed.rows = files.read_csv(seed.run_dir / names.METRICS)
                if seed.status == "running" and "params" not in seed.summary:  # its size: in the summary it
                    with contextlib.suppress(RunDirError):  # wrote as it started
                        seed.summary = files.read_json(seed.run_dir / names.SUMMARY)
            values = seeds_values(seeds, self.plan.objectives, self.plan.scoring.how, upto=epoch)
            if None not in values:
                at_rung[other] = values  # type: ignore[assignment]
        if point not in at_rung:  # no value to judge (a non-finite metric): the trial goes on
            return True
        return rung_keeps(at_rung, point, [g for _, g in self.plan.objectives], prune.reduction)

    def _tell(self, point: str) -> None:
        if self.search is not None:
            entry = self._point(point)
            if entry.final:
                how = self.plan.scoring.how
                values = entry_values(entry, self.plan.objectives, how) if self.plan.objectives else entry.score
                self.search.tell(point, entry.status, values)

    def finished(self, result: TrialResult) -> None:
        """A trial ended (or stopped): record it, print a line, rewrite the results (see RECORDS_EVERY)."""
        outcome = self.outcomes[result.trial_id]
        outcome.refresh(result.status, result.summary)
        board.trial_ended(self.root, result.trial_id, outcome.status)
        if self.tracker is not None:  # the trial's nested run in MLflow, now rather than at the sweep's end
            self.tracker.trial_ended(self.root / names.SWEEP_TRIALS / result.trial_id)
        self._tell(outcome.trial.point_id)
        if result.storage and self.stop is not None:  # every later write would fail too: stop, keep what is done
            self.storage, self.stop.requested = result.storage, True
        value = outcome.score
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
        best = best_of(self.entries(), self.plan.goal)
        best_text = f"{best.id} ({shown_score(best, best.score, best.std)})" if best else "—"
        self.display.update(done, sum(o.status == "running" for o in items), best_text, line)

    def seconds(self) -> float:
        return self.seconds_before + time.monotonic() - self.t0

    def write(self, status: str) -> dict[str, Any]:
        """Rewrite results.csv and summary.json (atomically) with what is known now."""
        files.write_csv(self.root / names.SWEEP_RESULTS, result_columns(self.plan, self.final),
                        [result_row(e) for e in self.entries()])
        front = Front(self.plan, self.entries()) if self.plan.objectives else None
        summary = sweep_summary(self.plan, self.root, self.outcomes, status, self.seconds(), self.jobs,
                                front.picked if front else None)
        summary.update(validation=self.validation, threads=self.threads, pid=os.getpid(), host=socket.gethostname())
        if self.failure:
            summary["stopped"] = self.failure
        if self.heatmap:
            summary["heatmap"] = self.heatmap
        if self.pareto:
            summary["pareto"] = self.pareto
        files.write_json(self.root / names.SUMMARY, summary)
        self.written = time.monotonic()
        return summary

    def _scored_by(self) -> str:
        """How a trial is scored, for the leaderboard's header."""
        scoring = self.plan.scoring
        if scoring.metric.startswith("best_"):
            return f"the best epoch's {scoring.column}"
        return "the best epoch" if scoring.how == "best" else "the last epoch"

    def _write_best(self, best: Entry | None, front: Front | None = None) -> None:
        """best.yaml: the config of the best trial (of the best point's first seed; with several objectives
        the front point sweep.pick chose), its thread count pinned."""
        if best is not None:
            scored = f"{front.scored(best)}; picked by sweep.pick: {front.said()}" if front else None
            write_point_config(self.root / names.SWEEP_BEST, self.root, self.plan, best, "Best of sweep", scored)

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
        front = Front(self.plan, self.entries()) if self.plan.objectives else None
        self._write_best(front.picked if front else best_of(self.entries(), self.plan.goal), front)
        if front is not None:
            self.pareto = front.write(self.root, status)
        if self.plan.draws_heatmap:
            from dlrun.ui.heatmap import sweep_heatmap

            row_key, rows, col_key, cols, cells = heat_cells(self.plan, self.outcomes)
            by = f"mean ± std of {self.plan.repeats} seeds by point" if self.plan.repeats > 1 else "by trial"
            title = (f"{self.plan.base.config.name}: {self.plan.metric} {by} ({status})\n"
                     "red, hatched: diverged (loss became NaN/inf)"
                     + ("; crossed: pruned (coloured by its value at that epoch)"
                        if any(o.status == "pruned" for o in items) else "")
                     + ("; ≈ best: within one standard error of the best mean" if self.plan.repeats > 1 else ""))
            sweep_heatmap(self.root / names.SWEEP_HEATMAP, row_key, rows, col_key, cols, cells, self.plan.metric,
                          title, self.plan.goal)
            self.heatmap = str(self.root / names.SWEEP_HEATMAP)
        # the summary last: a sweep that says it ended has every record (a full disk stops it before)
        summary = self.write(status)
        if not reporter.json_mode:
            seeds = f", mean of {self.plan.repeats} seeds" if self.plan.repeats > 1 else ""
            on = (f"ranked on {self.plan.metric}" + (", measured on the test split (data.validation: test)"
                                                     if self.validation == VALIDATION_ON_TEST else "")
                  + f", scored by {self._scored_by()}{seeds}")
            beside = self.final + base_name(self.plan.metric)
            if front is not None:
                on = f"ranked by Pareto front on {', '.join(f'{m} ({g})' for m, g in self.plan.objectives)}{seeds}"
                table = front.table(f"{self.plan.base.config.name} sweep — {on} — {self.root}")
            else:
                table = leaderboard(self.plan, self.entries(), f"{self.plan.base.config.name} sweep — {on} — "
                                    f"{self.root}", beside if beside != self.plan.metric else None)
            # A terminal has its own width; a file or a pipe gets one wide enough for the notes.
            out = reporter.out if reporter.out.is_terminal else Console(highlight=False, width=160)
            out.print(table)
        return summary


def _mean_at(seeds: list[Outcome], epoch: int) -> float | None:
    """The mean of the seeds' running scores after `epoch` (None when one has none)."""
    values = [s.score_at(epoch) for s in seeds]
    return mean_std([v for v in values if v is not None])[0] if None not in values else None
