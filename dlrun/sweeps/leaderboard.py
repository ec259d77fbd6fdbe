"""A sweep's leaderboard: every trial (or point of several seeds) ranked on its score, best first, as a
rich table for the console. No TensorFlow here."""

from __future__ import annotations

from rich.table import Table

from dlrun.store import names
from dlrun.sweeps.plan import SweepPlan
from dlrun.sweeps.ranking import Entry, Point, best_of, ranked
from dlrun.sweeps.report import STYLES, format_value, shown_status
from dlrun.sweeps.scoring import standard_error


def shown_score(entry: Entry, value: float | None = None, std: float | None = None) -> str:
    """A score for a table: `0.9120`, with its seeds' spread `0.9120 ± 0.0040`, or — without one."""
    if value is None:
        return "—"
    return f"{value:.4f}" + (f" ± {std:.4f}" if std is not None else "")


LEADERBOARD_ROWS = 64
"""The leaderboard prints the best this many entries: the course's 8 x 8 lr x lambda grid whole, while a grid
of thousands would scroll past its best; results.csv holds every one."""


def leaderboard(plan: SweepPlan, items: list[Entry], title: str, beside: str | None = None) -> Table:
    """The ranked table: rank, trial (or point, with its seeds), swept values, status, the score ranked on
    (mean ± std over a point's seeds; ≈ marks a point within one standard error of the best's), `beside`
    it the final metric it stands for (reported, never ranked on), epochs, seconds, note; the best
    LEADERBOARD_ROWS entries."""
    metric = plan.metric
    points = plan.repeats > 1
    table = Table(title=title, header_style="bold")
    extra = [beside] if beside else []
    shown = f"{metric} (mean ± std of {plan.repeats} seeds)" if points else metric
    columns = ["#", "point" if points else "trial", *plan.keys, "status", shown, *extra, "epochs", "seconds", "note"]
    for column in columns:
        table.add_column(column, justify="right" if column not in ("point", "trial", "status", "note") else "left")
    best = best_of(items, plan.goal)
    order = ranked(items, plan.goal)
    for rank, e in enumerate(order[:LEADERBOARD_ROWS], start=1):
        scored = e.status in ("completed", "pruned")
        values = [shown_score(e, e.score if scored else None, e.std)]
        values += [shown_score(e, e.value(b) if scored else None, e.spread(b) if isinstance(e, Point) else None)
                   for b in extra]
        style = "bold green" if e is best else STYLES.get(e.kind())
        params = [format_value(e.trial.params[k]) for k in plan.keys]
        mark = " ≈" if e.within and e is not best else ""
        table.add_row(f"{rank}{mark}", e.id, *params, shown_status(e), *values, str(e.summary.get("epochs_run", "")),
                      f"{e.summary['seconds']:.1f}" if "seconds" in e.summary else "", e.note, style=style)
    captions = []
    if points and best is not None:
        margin = standard_error(best.std, best.seeds)
        captions.append("≈: mean within one standard error of the best's" + (f" ({margin:.4f})" if margin else "")
                        + "; a difference that small is noise between seeds")
    if len(order) > LEADERBOARD_ROWS:
        captions.append(f"the top {LEADERBOARD_ROWS} of {len(order):,} {'points' if points else 'trials'}; every "
                        f"one is in {names.SWEEP_RESULTS}")
    table.caption = "\n".join(captions) or None
    return table
