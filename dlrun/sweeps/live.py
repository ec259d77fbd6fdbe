"""The sweep's progress: on a terminal a live bar with trials done / running / left, the best so far
and an ETA; elsewhere one plain line per finished trial (and nothing at all with --json); the sweep's
size and what its pruner judges, for its first line."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dlrun.sweeps.plan import SweepPlan
from dlrun.ui.console import Reporter


class SweepDisplay:
    """Shows the state of a sweep of `total` trials, `done` of which had ended before this session."""

    def __init__(self, reporter: Reporter, total: int, done: int):
        self.reporter, self.total = reporter, total
        self.started, self.done_at_start = time.monotonic(), done
        self.progress: Progress | None = None
        if reporter.live:
            self.progress = Progress(
                TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[state]}"), TimeElapsedColumn(),
                console=reporter.out, transient=False)
            self.task = self.progress.add_task("sweep", total=total, completed=done, state="")

    def __enter__(self) -> SweepDisplay:
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def eta(self, done: int, left: int) -> str:
        """Remaining time from this session's pace (unknown until a trial has finished)."""
        finished = done - self.done_at_start
        if finished <= 0 or left <= 0:
            return "?" if left else "0s"
        seconds = (time.monotonic() - self.started) / finished * left
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s" if seconds >= 60 else f"{seconds:.0f}s"

    def update(self, done: int, running: int, best: str, line: str | None = None) -> None:
        """New counts and best-so-far text; `line` is printed above the bar (or alone when not live)."""
        left = self.total - done - running
        state = f"running {running} · left {left} · best {best} · ETA {self.eta(done, left + running)}"
        if self.progress:
            if line:
                self.progress.console.print(line)
            self.progress.update(self.task, completed=done, state=state)
        elif line:
            self.reporter.info(line)


def sweep_size(plan: SweepPlan) -> str:
    """`12 trials`, or with sweep.repeats `4 points x 3 seeds = 12 trials`."""
    if plan.repeats == 1:
        return f"{plan.planned} trials"
    return f"{plan.points_planned} points x {plan.repeats} seeds = {plan.planned} trials"


def pruning_said(plan: SweepPlan) -> str:
    """What the pruner judges, for the sweep's first line: `, pruning: asha on val_accuracy (running best)`."""
    method = plan.base.config.sweep.prune.method  # type: ignore[union-attr]
    if method == "none":
        return ""
    seeds = f", the mean of {plan.repeats} seeds" if plan.repeats > 1 else ""
    if plan.objectives:
        return f", pruning: {method} on Pareto front rank ({', '.join(m for m, _ in plan.objectives)}){seeds}"
    return f", pruning: {method} on {plan.scoring.describe()}{seeds}"
