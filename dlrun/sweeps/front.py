"""The records of a sweep with several objectives (sweep.objectives): pareto.csv (every entry, its
objective values, its front rank), pareto.png, pareto/ID.yaml for each front point, the leaderboard in
front order, and the front point sweep.pick chooses (best.yaml). No TensorFlow here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from dlrun.store import files, names
from dlrun.sweeps.best import write_point_config
from dlrun.sweeps.pareto import by_front, entry_values, pick, pick_said, ranked_front
from dlrun.sweeps.plan import SweepPlan
from dlrun.sweeps.ranking import Entry
from dlrun.sweeps.report import STYLES, format_value, shown_status


class Front:
    """The entries of a multi-objective sweep, ranked by Pareto front, and the point sweep.pick chooses."""

    def __init__(self, plan: SweepPlan, items: list[Entry]):
        sweep = plan.base.config.sweep
        assert sweep is not None
        self.plan, self.objectives, self.how, self.rule = plan, plan.objectives, sweep.score, sweep.pick
        self.ranks = ranked_front(items, self.objectives, self.how)
        self.ordered = by_front(items, self.ranks, self.objectives, self.how)
        self.front = [e for e in self.ordered if self.ranks.get(e.id) == 1]
        self.picked = pick(self.front, self.objectives, self.rule, self.how)

    def values(self, entry: Entry) -> list[float | None]:
        """The entry's value of each objective."""
        return entry_values(entry, self.objectives, self.how)

    def scored(self, entry: Entry) -> str:
        """`val_accuracy 0.91, params 1,234`: the entry's objective values, for a config's header."""
        return ", ".join(f"{m} {_shown(v)}" for (m, _), v in zip(self.objectives, self.values(entry), strict=True))

    def said(self) -> str:
        """The pick rule in words."""
        return pick_said(self.rule, self.objectives)

    def columns(self) -> list[str]:
        """pareto.csv's columns: the entry, swept keys, status, each objective, front rank, on front, picked."""
        first = "point" if self.plan.repeats > 1 else "trial"
        return [first, *self.plan.keys, "status", *(m for m, _ in self.objectives), "front_rank", "on_front",
                "picked"]

    def rows(self) -> list[dict[str, Any]]:
        """One pareto.csv row per entry, in front order (a pruned entry's values are those when pruned)."""
        first = "point" if self.plan.repeats > 1 else "trial"
        out = []
        for e in self.ordered:
            values = dict(zip((m for m, _ in self.objectives), self.values(e), strict=True))
            rank = self.ranks.get(e.id)
            out.append({first: e.id, **e.trial.params, "status": e.status, **values, "front_rank": rank,
                        "on_front": rank == 1, "picked": e is self.picked})
        return out

    def write(self, root: Path, status: str) -> dict[str, Any]:
        """pareto.csv, pareto.png and pareto/ID.yaml (the folder's configs of points no longer on the front
        are removed); returns what summary.json says of the front."""
        from dlrun.ui.pareto_plot import pareto_plot

        files.write_csv(root / names.SWEEP_PARETO, self.columns(), self.rows())
        folder = root / names.SWEEP_PARETO_CONFIGS
        folder.mkdir(exist_ok=True)
        keep = {f"{e.id}.yaml" for e in self.front}
        for old in folder.glob("*.yaml"):
            if old.name not in keep:
                old.unlink()
        for e in self.front:
            write_point_config(folder / f"{e.id}.yaml", root, self.plan, e, "Pareto front point of sweep",
                               self.scored(e))
        (ym, yg), (xm, xg) = self.objectives[0], self.objectives[1]
        points = [(v[1], v[0], e.status, self.ranks.get(e.id))
                  for e, v in ((e, self.values(e)) for e in self.ordered)]
        more = f" (objectives 3+ not drawn: {', '.join(m for m, _ in self.objectives[2:])})" \
            if len(self.objectives) > 2 else ""
        pareto_plot(root / names.SWEEP_PARETO_PLOT, points, (xm, xg), (ym, yg),
                    f"{self.plan.base.config.name}: {len(self.front)} of {len(self.ordered)} on the Pareto front "
                    f"({status}){more}")
        return {"objectives": [{"metric": m, "goal": g} for m, g in self.objectives],
                "front": [e.id for e in self.front], "picked": self.picked.id if self.picked else None,
                "pick": pick_said(self.rule, self.objectives), "csv": str(root / names.SWEEP_PARETO),
                "plot": str(root / names.SWEEP_PARETO_PLOT)}

    def table(self, title: str) -> Table:
        """The leaderboard in front order: front rank, entry, swept values, status, each objective, epochs,
        seconds, note; the picked point bold green, the rest of the front green."""
        table = Table(title=title, header_style="bold", caption=f"best.yaml: {pick_said(self.rule, self.objectives)}")
        for column in ["front", "point" if self.plan.repeats > 1 else "trial", *self.plan.keys, "status",
                       *(f"{m} ({g})" for m, g in self.objectives), "epochs", "seconds", "note"]:
            table.add_column(column, justify="left" if column in ("point", "trial", "status", "note") else "right")
        for e in self.ordered:
            rank = self.ranks.get(e.id)
            style = "bold green" if e is self.picked else "green" if rank == 1 else STYLES.get(e.kind())
            table.add_row(str(rank or "—"), e.id, *(format_value(e.trial.params[k]) for k in self.plan.keys),
                          shown_status(e), *(_shown(v) for v in self.values(e)),
                          str(e.summary.get("epochs_run", "")),
                          f"{e.summary['seconds']:.1f}" if "seconds" in e.summary else "", e.note, style=style)
        return table


def _shown(value: float | None) -> str:
    """An objective's value: an integer count as it is, else 4 significant digits; — for none."""
    if value is None:
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 1 else f"{value:.4g}"
