"""What a sweep reports: one outcome per trial, results.csv rows, the ranking, the leaderboard table,
the heat map cells, and notes that name exploding and vanishing learning rates. No TensorFlow here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlrun.errors import RunDirError
from dlrun.metrics import chance_accuracy, task_metric
from dlrun.store import files, names
from dlrun.store.status import FINAL_STATUSES
from dlrun.sweeps.plan import SweepPlan, Trial
from dlrun.sweeps.ranking import Entry, Point, best_of, entries
from dlrun.sweeps.scoring import Scoring

STALL_FRACTION = 0.02  # a loss that falls by less than this over the run has stalled
HUGE_LOSS = 1e6  # no sensible model has a loss this large: the weights have blown up
CHANCE_SHARE = 0.05  # accuracy that closes less than 5% of the gap from chance to 1 counts as not learning
STYLES = {"diverged": "red", "failed": "magenta", "exploding": "red", "stalled": "yellow",
          "no learning": "yellow", "pruned": "blue", "pending": "dim", "running": "cyan", "interrupted": "yellow"}


@dataclass
class Outcome:
    """A trial and what is known of it: status (pending until it starts), its run summary and epoch rows."""

    trial: Trial
    run_dir: Path
    status: str = "pending"
    summary: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    scoring: Scoring | None = None
    rows: list[dict[str, str]] = field(default_factory=list)
    std: float | None = None  # one seed: no spread (a Point has one)
    within: bool = False  # a point within one standard error of the best's (points only)

    @property
    def id(self) -> str:
        """The trial's id."""
        return self.trial.id

    @property
    def seeds(self) -> int:
        """How many seeds this entry's score averages: one."""
        return 1

    @property
    def final(self) -> bool:
        """True once the trial completed, diverged, was pruned or failed (it never runs again)."""
        return self.status in FINAL_STATUSES

    @property
    def kept_epoch(self) -> int | None:
        """The epoch whose weights the run kept, when the summary names one (restore_best_weights)."""
        kept = self.summary.get("kept_epoch", self.summary.get("restored_best_epoch"))
        return kept if isinstance(kept, int) else None

    @property
    def score(self) -> float | None:
        """What the trial is ranked on (see scoring.py): None unless it completed or was pruned."""
        if self.status not in ("completed", "pruned") or self.scoring is None:
            return None
        return self.scoring.score(self.rows, kept_epoch=self.kept_epoch)

    def score_at(self, epoch: int) -> float | None:
        """The trial's running score after `epoch` (None before it reached that epoch)."""
        if self.scoring is None or len(self.rows) < epoch:
            return None
        return self.scoring.score(self.rows, upto=epoch)

    def value(self, metric: str) -> float | None:
        """The trial's summary value of `metric`, when it has a finite one."""
        value = self.summary.get("metrics", {}).get(metric)
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

    def refresh(self, status: str, summary: dict[str, Any]) -> None:
        """Take a new status and summary, read the trial's metrics.csv and work out the note from it."""
        self.status, self.summary = status, summary
        self.rows = files.read_csv(self.run_dir / names.METRICS)
        self.note = trial_note(status, summary, self.rows)

    def kind(self) -> str:
        """The status, or `exploding` / `stalled` / `no learning` for completed trials whose note says so."""
        if self.status == "completed" and self.note:
            return self.note.split(":", 1)[0]
        return self.status


def trial_note(status: str, summary: dict[str, Any], rows: list[dict[str, str]]) -> str:
    """A short human reading of a trial: exploded (non-finite loss), exploding (the loss grew or is
    huge), stalled (the loss barely moved: learning rate too small), no learning (accuracy at chance, the
    majority-class rate of the split it is measured on: e.g. the penalty crushed the weights), or the failure."""
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
    chance = chance_accuracy("accuracy", summary.get("class_counts"))
    if chance is not None and isinstance(accuracy, int | float) and accuracy <= chance + CHANCE_SHARE * (1 - chance):
        return f"no learning: accuracy {accuracy:.3f} (chance = majority rate {chance:.3f})"
    return ""


def outcomes_for(plan: SweepPlan, trials_dir: Path) -> dict[str, Outcome]:
    """The outcome of every planned trial as its directory says (pending when it has no summary)."""
    out = {}
    for trial in plan.trials:
        outcome = Outcome(trial, trials_dir / trial.id, scoring=plan.scoring)
        try:
            summary = files.read_json(outcome.run_dir / names.SUMMARY)
        except RunDirError:  # no summary yet: the trial has not started
            summary = {}
        status = str(summary.get("status", "pending"))
        outcome.refresh("interrupted" if status == "running" else status, summary)
        out[trial.id] = outcome
    return out


METRIC_COLUMNS = ("loss", "{name}", "val_loss", "val_{name}", "{final}loss", "{final}{name}")


def result_columns(plan: SweepPlan, final: str = "test_") -> list[str]:
    """results.csv columns: trial (a point, with sweep.repeats), the swept keys, status, epochs, the epoch
    whose weights the trial kept, the score ranked on (mean and std over a point's seeds), that epoch's
    metrics with the final ones of its weights (`test_`, or `train_` when the data has no test split),
    seconds and the threads each trial ran with."""
    name = task_metric(plan.base.config.task)
    sweep = plan.base.config.sweep
    assert sweep is not None
    first = ["trial", "round"] if sweep.refine else ["trial"]
    pruned = ["pruned_epoch"] if sweep.prune.method != "none" else []
    metrics = [m.format(name=name, final=final) for m in METRIC_COLUMNS]
    if plan.repeats == 1:
        return [*first, *plan.keys, "status", "epochs_run", *pruned, "kept_epoch", "score", *metrics, "seconds",
                "threads", "inter_op_threads"]
    spread = [f"{m}_{part}" for m in metrics for part in ("mean", "std")]
    first[0] = "point"
    return [*first, *plan.keys, "status", "seeds", "seed", "epochs_run", *pruned, "score_mean", "score_std",
            "within_1se", *spread, "seconds", "threads", "inter_op_threads"]


def result_row(entry: Entry) -> dict[str, Any]:
    """One results.csv row: a trial's, or a point's (means and standard deviations of its seeds)."""
    summary = entry.summary
    row: dict[str, Any] = {"trial": entry.trial.id, "round": entry.trial.round, **entry.trial.params,
                           "status": entry.status, "epochs_run": summary.get("epochs_run"),
                           "pruned_epoch": summary.get("pruned_epoch"), "kept_epoch": summary.get("kept_epoch"),
                           "seconds": summary.get("seconds")}
    if isinstance(entry, Point):
        row.update(point=entry.id, seeds=entry.seeds, seed=entry.trial.seed, score_mean=entry.score,
                   score_std=entry.std, within_1se=entry.within)
        first = entry.members[0].summary
        row.update(threads=first.get("threads"), inter_op_threads=first.get("inter_op_threads"))
        for key in {k for m in entry.members for k in m.summary.get("metrics", {})}:
            row[f"{key}_mean"], row[f"{key}_std"] = entry.value(key), entry.spread(key)
        return row
    row.update(score=entry.score, threads=summary.get("threads"), inter_op_threads=summary.get("inter_op_threads"))
    for key, value in summary.get("metrics", {}).items():
        row.setdefault(key, value)
    return row


def shown_status(entry: Entry) -> str:
    """The status as the tables show it: a pruned entry with its epoch (`pruned @3`)."""
    return f"pruned @{entry.summary.get('pruned_epoch', '?')}" if entry.status == "pruned" else entry.status


Cell = tuple[float | None, str, str]


def format_value(value: Any) -> str:
    """A swept value for a table cell (floats as %g)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


HeatGrid = tuple[str, list[Any], str, list[Any], list[list[Cell]]]


def heat_cells(plan: SweepPlan, outcomes: dict[str, Outcome]) -> HeatGrid:
    """(row key, row values, column key, column values, cells) of the grid's heat map; each cell is
    (value or None, label, kind), a point of several seeds labelled mean ± std. Rows are the learning
    rate when it is swept."""
    keys = plan.keys
    row_key = "optimizer.lr" if "optimizer.lr" in keys else keys[0]
    col_key = next((k for k in keys if k != row_key), "")
    rows, cols = _axis(plan, row_key), _axis(plan, col_key) if col_key else [""]
    refined = any(t.round for t in plan.trials)  # refined points make their own rows and columns
    cells: list[list[Cell]] = [[(None, "", "" if refined else "pending") for _ in cols] for _ in rows]
    for e in entries(plan, outcomes):
        i = rows.index(e.trial.params[row_key])
        j = cols.index(e.trial.params[col_key]) if col_key else 0
        value, kind = e.score, e.kind()
        shown = "" if value is None else f"{value:.3f}" + (f"\n± {e.std:.3f}" if e.std is not None else "")
        if kind == "diverged":
            label = f"diverged\nepoch {e.summary.get('diverged_epoch', '?')}"
        elif kind == "pruned":
            label = (f"{shown}\n" if shown else "") + shown_status(e)
        elif e.status == "completed" and value is not None:
            label = shown + (f"\n{kind}" if kind != "completed" else "") + ("\n≈ best" if e.within else "")
        else:
            label = e.status
        cells[i][j] = (value if e.status == "completed" or kind == "pruned" else None, label, kind)
    return row_key, rows, col_key, cols, cells


def _axis(plan: SweepPlan, key: str) -> list[Any]:
    """A heat map axis: the key's values in the order of the space, sorted when refinement added points."""
    values = plan.values(key)
    numeric = all(isinstance(v, int | float) for v in values)
    return sorted(values) if numeric and any(t.round for t in plan.trials) else values


def sweep_summary(plan: SweepPlan, root: Path, outcomes: dict[str, Outcome], status: str, seconds: float,
                  jobs: int, chosen: Entry | None = None) -> dict[str, Any]:
    """summary.json: status counts, the best trial (id, params, score; with sweep.repeats the best point's
    mean, std and first seed; with sweep.objectives `chosen`, the front point sweep.pick chose), total
    seconds, every trial (and every point)."""
    items = list(outcomes.values())
    counts = {"total": len(items)}
    for o in items:
        counts[o.status] = counts.get(o.status, 0) + 1
    ranked_entries = entries(plan, outcomes)
    best = chosen if plan.objectives else best_of(ranked_entries, plan.goal)
    best_info = None
    if best is not None:
        first = best.members[0] if isinstance(best, Point) else best
        best_info = {"trial": first.trial.id, "params": best.trial.params, "metric": plan.metric,
                     "value": best.score, "run_dir": str(first.run_dir), "config": str(root / names.SWEEP_BEST),
                     "seed": first.trial.seed}
        if isinstance(best, Point):
            best_info.update(point=best.id, std=best.std, seeds=best.seeds)
    trials = [{"trial": o.trial.id, "status": o.status, "params": o.trial.params, "seed": o.trial.seed,
               plan.metric: o.score, "epochs_run": o.summary.get("epochs_run"),
               "kept_epoch": o.summary.get("kept_epoch"),
               **({"point": o.trial.point} if o.trial.point else {}),
               **({"diverged_epoch": o.summary["diverged_epoch"]} if "diverged_epoch" in o.summary else {}),
               **({"pruned_epoch": o.summary["pruned_epoch"]} if "pruned_epoch" in o.summary else {}),
               **({"round": o.trial.round} if o.trial.round else {}),
               **({"note": o.note} if o.note else {})} for o in items]
    out = {"status": status, "sweep_dir": str(root), "name": plan.base.config.name, "mode": plan.mode,
           "params": {k: plan.values(k) for k in plan.keys}, "metric": plan.metric, "goal": plan.goal,
           "score": plan.scoring.how, "repeats": plan.repeats, "counts": counts, "best": best_info,
           "seconds": round(seconds, 3), "jobs": jobs, "results": str(root / names.SWEEP_RESULTS), "trials": trials}
    if plan.repeats > 1:
        out["points"] = [{"point": p.id, "status": p.status, "params": p.trial.params, "mean": p.score, "std": p.std,
                          "seeds": p.seeds, "within_1se": p.within} for p in ranked_entries if isinstance(p, Point)]
    return out
