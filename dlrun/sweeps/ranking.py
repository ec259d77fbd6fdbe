"""What a sweep ranks, and how: its trials, or with `sweep.repeats` its points (a point's trials, one
run directory per seed, seen as one entry with the mean and standard deviation of their scores; it
answers what the ranking, the leaderboard, results.csv and the heat map ask of a single trial's
outcome), best first by score whatever the status.

A point's status: failed or diverged when any seed is; pruned when the pruner stopped it (its score is
then the mean of its seeds' running scores at the epoch it was pruned, the value the pruner judged);
completed when every seed completed; else running, interrupted or pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dlrun.store.status import FINAL_STATUSES
from dlrun.sweeps.plan import SweepPlan, Trial
from dlrun.sweeps.scoring import mean_std, standard_error


class Seed(Protocol):
    """A trial's outcome as the ranking reads it (report.Outcome): also an entry of its own."""

    trial: Trial
    run_dir: Path
    status: str
    summary: dict[str, Any]
    note: str
    rows: list[dict[str, str]]
    std: float | None
    within: bool

    @property
    def id(self) -> str: ...

    @property
    def final(self) -> bool: ...

    @property
    def score(self) -> float | None: ...

    def score_at(self, epoch: int) -> float | None: ...

    def value(self, metric: str) -> float | None: ...

    def kind(self) -> str: ...


@dataclass
class Point:
    """The seeds' outcomes of one point, in seed order."""

    members: list[Seed]
    within: bool = False  # its mean lies within one standard error of the best point's

    @property
    def trial(self) -> Trial:
        """The first seed's trial: the point's values and config (best.yaml reproduces it)."""
        return self.members[0].trial

    @property
    def id(self) -> str:
        """The point's id (its trials are ID-0, ID-1, ...)."""
        return self.trial.point_id

    @property
    def run_dir(self) -> Path:
        """The first seed's run directory."""
        return self.members[0].run_dir

    @property
    def seeds(self) -> int:
        """How many seeds the point runs."""
        return len(self.members)

    @property
    def final(self) -> bool:
        """True once every seed has ended."""
        return all(m.status in FINAL_STATUSES for m in self.members)

    @property
    def status(self) -> str:
        """The point's status, from its seeds' (see the module's docstring)."""
        statuses = [m.status for m in self.members]
        if "pruned" in statuses:
            return "pruned"
        if self.final:
            return next((s for s in ("failed", "diverged") if s in statuses), "completed")
        if "running" in statuses:
            return "running"
        return "pending" if all(s == "pending" for s in statuses) else "interrupted"

    @property
    def pruned_epoch(self) -> int | None:
        """The epoch the pruner stopped the point at (its earliest pruned seed's)."""
        epochs = [m.summary.get("pruned_epoch") for m in self.members if m.status == "pruned"]
        return min((e for e in epochs if isinstance(e, int)), default=None)

    def _scores(self) -> list[float]:
        epoch = self.pruned_epoch
        if self.status == "pruned" and epoch is not None:
            values = [m.score_at(epoch) for m in self.members]
        elif self.status == "completed":
            values = [m.score for m in self.members]
        else:
            return []
        return [v for v in values if v is not None] if all(v is not None for v in values) else []

    @property
    def score(self) -> float | None:
        """The mean of the seeds' scores (completed or pruned points; None otherwise)."""
        return mean_std(self._scores())[0]

    @property
    def std(self) -> float | None:
        """The sample standard deviation of the seeds' scores."""
        return mean_std(self._scores())[1]

    def value(self, metric: str) -> float | None:
        """The mean of the seeds' summary values of `metric` (None unless every seed has one)."""
        values = [m.value(metric) for m in self.members]
        return mean_std([v for v in values if v is not None])[0] if all(v is not None for v in values) else None

    def spread(self, metric: str) -> float | None:
        """The sample standard deviation of the seeds' summary values of `metric`."""
        values = [m.value(metric) for m in self.members]
        return mean_std([v for v in values if v is not None])[1] if all(v is not None for v in values) else None

    @property
    def summary(self) -> dict[str, Any]:
        """What the tables read of a trial's summary: pruned_epoch, diverged_epoch, epochs_run (the most
        any seed ran), seconds (all seeds together), and the error of a failed seed."""
        out: dict[str, Any] = {}
        seconds = [m.summary["seconds"] for m in self.members if isinstance(m.summary.get("seconds"), int | float)]
        if seconds:
            out["seconds"] = round(sum(seconds), 3)
        runs = [m.summary["epochs_run"] for m in self.members if isinstance(m.summary.get("epochs_run"), int)]
        if runs:
            out["epochs_run"] = max(runs)
        if self.pruned_epoch is not None:
            out["pruned_epoch"] = self.pruned_epoch
        for m in self.members:
            for key in ("diverged_epoch", "error"):
                if key in m.summary:
                    out.setdefault(key, m.summary[key])
        return out

    @property
    def note(self) -> str:
        """The note of the seed that decides the point's status (or the first seed's with a note)."""
        deciding = [m for m in self.members if m.status == self.status and m.note]
        notes = deciding or [m for m in self.members if m.note]
        if not notes:
            return ""
        return notes[0].note if len(notes) == self.seeds else f"seed {notes[0].trial.rep}: {notes[0].note}"

    def kind(self) -> str:
        """The status, or the kind of its note (exploding, stalled, no learning) for a completed point."""
        if self.status == "completed":
            kinds = {m.kind() for m in self.members}
            return kinds.pop() if len(kinds) == 1 else "completed"
        return self.status


Entry = Seed | Point  # what is ranked: a trial (report.Outcome), or a point of several seeds


def entries(plan: SweepPlan, outcomes: dict[str, Seed], ids: list[str] | None = None) -> list[Entry]:
    """What the sweep ranks: each trial when every point runs one seed, else each point (its seeds
    grouped); `ids`: only the entries of these trials. Points within one standard error of the best's
    are marked (`within`)."""
    chosen = [outcomes[i] for i in ids] if ids is not None else list(outcomes.values())
    if plan.repeats == 1:
        return list(chosen)
    groups: dict[str, list[Seed]] = {}
    for o in chosen:
        groups.setdefault(o.trial.point_id, []).append(o)
    points = [Point(sorted(group, key=lambda o: o.trial.rep)) for group in groups.values()]
    best = best_of(points, plan.goal)
    margin = standard_error(best.std, best.seeds) if best is not None else None
    for point in points:
        point.within = (best is not None and point is not best and margin is not None and point.score is not None
                        and abs(point.score - best.score) <= margin)  # type: ignore[operator]
    return points


def ranked(items: list[Entry], goal: str) -> list[Entry]:
    """Best first by score, whatever the status (a pruned trial's score is its value when pruned; on a
    tie a completed one first), then diverged, failed and unfinished ones."""
    order = {"diverged": 1, "failed": 2}

    def key(e: Entry) -> tuple[int, float, int, str]:
        value = e.score
        if value is not None:
            return 0, -value if goal == "max" else value, e.status != "completed", e.id
        return order.get(e.status, 3), 0.0, 0, e.id

    return sorted(items, key=key)


def best_of(items: list[Entry], goal: str) -> Entry | None:
    """The best completed trial (or point), or None."""
    return next((e for e in ranked(items, goal) if e.status == "completed" and e.score is not None), None)
