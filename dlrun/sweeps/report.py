"""What a sweep reports: one outcome per trial, results.csv rows, the ranking, the leaderboard table,
the heat map cells, and notes that name exploding and vanishing learning rates. No TensorFlow here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from dlrun.errors import RunDirError
from dlrun.metrics import task_metric
from dlrun.store import files, names
from dlrun.store.status import FINAL_STATUSES
from dlrun.sweeps.plan import SweepPlan, Trial

STALL_FRACTION = 0.02  # a loss that falls by less than this over the run has stalled
HUGE_LOSS = 1e6  # no sensible model has a loss this large: the weights have blown up
CHANCE_MARGIN = 1.5  # accuracy within 1.5x of guessing counts as not learning
STYLES = {"diverged": "red", "failed": "magenta", "exploding": "red", "stalled": "yellow",
          "no learning": "yellow", "pruned": "blue", "pending": "dim", "running": "cyan", "interrupted": "yellow"}


@dataclass
class Outcome:
    """A trial and what is known of it: status (pending until it starts) and its run summary."""

    trial: Trial
    run_dir: Path
    status: str = "pending"
    summary: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    classes: int | None = None

    @property
    def final(self) -> bool:
        """True once the trial completed, diverged, was pruned or failed (it never runs again)."""
        return self.status in FINAL_STATUSES

    def value(self, metric: str) -> float | None:
        """The trial's value of `metric`, when it has a finite one."""
        value = self.summary.get("metrics", {}).get(metric)
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

    def refresh(self, status: str, summary: dict[str, Any]) -> None:
        """Take a new status and summary, and work out the note from the trial's metrics.csv."""
        self.status, self.summary = status, summary
        self.note = trial_note(status, summary, files.read_csv(self.run_dir / names.METRICS), self.classes)

    def kind(self) -> str:
        """The status, or `exploding` / `stalled` / `no learning` for completed trials whose note says so."""
        if self.status == "completed" and self.note:
            return self.note.split(":", 1)[0]
        return self.status


def trial_note(status: str, summary: dict[str, Any], rows: list[dict[str, str]],
               classes: int | None = None) -> str:
    """A short human reading of a trial: exploded (non-finite loss), exploding (the loss grew or is
    huge), stalled (the loss barely moved: learning rate too small), no learning (accuracy at chance:
    e.g. the penalty crushed the weights), or the failure."""
    if status == "diverged":
        return f"exploded: non-finite loss in epoch {summary.get('diverged_epoch', '?')}"
    if status == "failed":
        return f"failed: {summary.get('error', 'unknown error')}"
    losses = [float(r["loss"]) for r in rows if r.get("loss") not in (None, "")]
    if status != "completed" or not losses:
        return ""
    first, last = losses[0], losses[-1]
    if not math.isfinite(last) or last > first or last > HUGE_LOSS:
        return f"exploding: loss {first:.3g} -> {last:.3g}"
    if len(losses) > 1 and first - last < STALL_FRACTION * abs(first):
        return f"stalled: loss {first:.3g} -> {last:.3g}"
    accuracy = summary.get("metrics", {}).get("accuracy")
    if classes and isinstance(accuracy, int | float) and accuracy <= CHANCE_MARGIN / classes:
        return f"no learning: accuracy {accuracy:.3f}, chance is {1 / classes:.3f}"
    return ""


def outcomes_for(plan: SweepPlan, trials_dir: Path, classes: int | None = None) -> dict[str, Outcome]:
    """The outcome of every planned trial as its directory says (pending when it has no summary)."""
    out = {}
    for trial in plan.trials:
        outcome = Outcome(trial, trials_dir / trial.id, classes=classes)
        try:
            summary = files.read_json(outcome.run_dir / names.SUMMARY)
        except RunDirError:  # no summary yet: the trial has not started
            summary = {}
        status = str(summary.get("status", "pending"))
        outcome.refresh("interrupted" if status == "running" else status, summary)
        out[trial.id] = outcome
    return out


def result_columns(plan: SweepPlan, final: str = "test_") -> list[str]:
    """results.csv columns: trial, the swept keys, status, epochs and metrics (the final ones `test_`, or
    `train_` when the data has no test split), seconds."""
    name = task_metric(plan.base.config.task)
    sweep = plan.base.config.sweep
    assert sweep is not None
    first = ["trial", "round"] if sweep.refine else ["trial"]
    pruned = ["pruned_epoch"] if sweep.prune.method != "none" else []
    return [*first, *plan.keys, "status", "epochs_run", *pruned, "loss", name, "val_loss", f"val_{name}",
            f"{final}loss", f"{final}{name}", "seconds"]


def result_row(outcome: Outcome) -> dict[str, Any]:
    """One results.csv row."""
    summary = outcome.summary
    row: dict[str, Any] = {"trial": outcome.trial.id, "round": outcome.trial.round, **outcome.trial.params,
                           "status": outcome.status, "epochs_run": summary.get("epochs_run"),
                           "pruned_epoch": summary.get("pruned_epoch"), "seconds": summary.get("seconds")}
    for key, value in summary.get("metrics", {}).items():
        row.setdefault(key, value)
    return row


def ranked(outcomes: list[Outcome], metric: str, goal: str) -> list[Outcome]:
    """Completed trials best first by `metric`, then pruned ones (by their value when pruned: later
    epochs first), then diverged, failed and unfinished ones."""
    order = {"completed": 1, "pruned": 2, "diverged": 3, "failed": 4}

    def key(o: Outcome) -> tuple[int, float, float, str]:
        value = o.value(metric)
        signed = 0.0 if value is None else -value if goal == "max" else value
        if o.status == "completed" and value is not None:
            return 0, 0.0, signed, o.trial.id
        if o.status == "pruned" and value is not None:
            return 2, -float(o.summary.get("pruned_epoch") or 0), signed, o.trial.id
        return order.get(o.status, 5), 0.0, 0.0, o.trial.id

    return sorted(outcomes, key=key)


def best_of(outcomes: list[Outcome], metric: str, goal: str) -> Outcome | None:
    """The best completed trial, or None."""
    top = ranked(outcomes, metric, goal)
    return top[0] if top and top[0].status == "completed" and top[0].value(metric) is not None else None


LEADERBOARD_ROWS = 50
"""The leaderboard prints the best this many trials (a grid of thousands would scroll past the best); results.csv
holds every one."""


def leaderboard(plan: SweepPlan, outcomes: list[Outcome], title: str, beside: str | None = None) -> Table:
    """The ranked table: rank, trial, swept values, status, the ranking metric, `beside` it the final
    metric it stands for (reported, never ranked on), epochs, seconds, note."""
    metric = plan.metric
    table = Table(title=title, header_style="bold")
    extra = [beside] if beside else []
    for column in ["#", "trial", *plan.keys, "status", metric, *extra, "epochs", "seconds", "note"]:
        table.add_column(column, justify="right" if column not in ("trial", "status", "note") else "left")
    best = best_of(outcomes, metric, plan.goal)
    order = ranked(outcomes, metric, plan.goal)
    for rank, o in enumerate(order[:LEADERBOARD_ROWS], start=1):
        value = o.value(metric)
        shown = [("—" if o.status not in ("completed", "pruned") or v is None else f"{v:.4f}")
                 for v in (value, *(o.value(b) for b in extra))]
        style = "bold green" if o is best else STYLES.get(o.kind())
        params = [format_value(o.trial.params[k]) for k in plan.keys]
        status = f"pruned @{o.summary.get('pruned_epoch', '?')}" if o.status == "pruned" else o.status
        table.add_row(str(rank), o.trial.id, *params, status, *shown, str(o.summary.get("epochs_run", "")),
                      f"{o.summary['seconds']:.1f}" if "seconds" in o.summary else "", o.note, style=style)
    if len(order) > LEADERBOARD_ROWS:
        table.caption = (f"the top {LEADERBOARD_ROWS} of {len(order):,} trials; every trial is in "
                         f"{names.SWEEP_RESULTS}")
    return table


Cell = tuple[float | None, str, str]


def format_value(value: Any) -> str:
    """A swept value for a table cell (floats as %g)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


HeatGrid = tuple[str, list[Any], str, list[Any], list[list[Cell]]]


def heat_cells(plan: SweepPlan, outcomes: dict[str, Outcome]) -> HeatGrid:
    """(row key, row values, column key, column values, cells) of the grid's heat map; each cell is
    (value or None, label, kind). Rows are the learning rate when it is swept."""
    keys = plan.keys
    row_key = "optimizer.lr" if "optimizer.lr" in keys else keys[0]
    col_key = next((k for k in keys if k != row_key), "")
    rows, cols = _axis(plan, row_key), _axis(plan, col_key) if col_key else [""]
    refined = any(t.round for t in plan.trials)  # refined points make their own rows and columns
    cells: list[list[Cell]] = [[(None, "", "" if refined else "pending") for _ in cols] for _ in rows]
    for o in outcomes.values():
        i = rows.index(o.trial.params[row_key])
        j = cols.index(o.trial.params[col_key]) if col_key else 0
        value, kind = o.value(plan.metric), o.kind()
        if kind == "diverged":
            label = f"diverged\nepoch {o.summary.get('diverged_epoch', '?')}"
        elif kind == "pruned":
            label = (f"{value:.3f}\n" if value is not None else "") + f"pruned @{o.summary.get('pruned_epoch', '?')}"
        elif o.status == "completed" and value is not None:
            label = f"{value:.3f}" + (f"\n{kind}" if kind != "completed" else "")
        else:
            label = o.status
        cells[i][j] = (value if o.status == "completed" else None, label, kind)
    return row_key, rows, col_key, cols, cells


def _axis(plan: SweepPlan, key: str) -> list[Any]:
    """A heat map axis: the key's values in the order of the space, sorted when refinement added points."""
    values = plan.values(key)
    numeric = all(isinstance(v, int | float) for v in values)
    return sorted(values) if numeric and any(t.round for t in plan.trials) else values


def sweep_summary(plan: SweepPlan, root: Path, outcomes: dict[str, Outcome], status: str, seconds: float,
                  jobs: int) -> dict[str, Any]:
    """summary.json: status counts, the best trial (id, params, metric), total seconds, every trial."""
    items = list(outcomes.values())
    counts = {"total": len(items)}
    for o in items:
        counts[o.status] = counts.get(o.status, 0) + 1
    best = best_of(items, plan.metric, plan.goal)
    best_info = None
    if best is not None:
        best_info = {"trial": best.trial.id, "params": best.trial.params, "metric": plan.metric,
                     "value": best.value(plan.metric), "run_dir": str(best.run_dir),
                     "config": str(root / names.SWEEP_BEST)}
    trials = [{"trial": o.trial.id, "status": o.status, "params": o.trial.params, "seed": o.trial.seed,
               plan.metric: o.value(plan.metric), "epochs_run": o.summary.get("epochs_run"),
               **({"diverged_epoch": o.summary["diverged_epoch"]} if "diverged_epoch" in o.summary else {}),
               **({"pruned_epoch": o.summary["pruned_epoch"]} if "pruned_epoch" in o.summary else {}),
               **({"round": o.trial.round} if o.trial.round else {}),
               **({"note": o.note} if o.note else {})} for o in items]
    return {"status": status, "sweep_dir": str(root), "name": plan.base.config.name, "mode": plan.mode,
            "params": {k: plan.values(k) for k in plan.keys}, "metric": plan.metric, "goal": plan.goal,
            "counts": counts, "best": best_info, "seconds": round(seconds, 3), "jobs": jobs,
            "results": str(root / names.SWEEP_RESULTS), "trials": trials}
