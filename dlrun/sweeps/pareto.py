"""Several objectives (`sweep.objectives`): a trial's value of each, the Pareto front ranks of the
trials (non-dominated sorting), and the one front point `sweep.pick` chooses. No TensorFlow here.

An objective is an epoch metric, scored from the trial's epoch rows as sweep.score says (scoring.py), or
one of the measurements every run records: `params` (the model's total parameter count, from its
summary), `epoch_seconds` (the mean seconds of its epochs, metrics.csv) and `predict_ms` (the
milliseconds to predict one batch of 32, measured by the engine at the end of training). A point of
several seeds has the mean of its seeds' values.

Only completed trials are ranked: rank 1 is the front (no completed trial is at least as good on every
objective and better on one), rank 2 the front of the rest, and so on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from dlrun.config.sweep_schema import PickRule
from dlrun.sweeps.ranking import Entry, Point
from dlrun.sweeps.scoring import Scoring, mean_std

Objectives = Sequence[tuple[str, str]]  # (metric, goal) of each objective


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def trial_value(outcome: Any, metric: str, goal: str, how: str = "last",
                upto: int | None = None) -> float | int | None:
    """One trial's (report.Outcome's) value of objective `metric`; None when it has none (a trial that
    did not complete or was not pruned has no epoch-metric value; one diverged in its first epoch no params).
    `upto`: its value after that epoch (a running trial's, judged by the pruner), from rows 1..upto."""
    summary = outcome.summary
    if metric == "params":
        total = (summary.get("params") or {}).get("total")
        return int(total) if isinstance(total, int) else None
    if metric == "predict_ms":
        return _finite(summary.get("predict_ms"))
    rows = outcome.rows if upto is None else outcome.rows[:upto]
    if metric == "epoch_seconds":
        seconds = [v for v in (_finite(_number(r.get("seconds"))) for r in rows) if v is not None]
        return sum(seconds) / len(seconds) if seconds else None
    if upto is not None:
        return Scoring(metric, goal, how).score(rows, upto=upto) if len(rows) >= upto else None
    if outcome.status not in ("completed", "pruned"):
        return None
    return Scoring(metric, goal, how).score(rows, kept_epoch=outcome.kept_epoch)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def entry_values(entry: Entry, objectives: Objectives, how: str = "last",
                 upto: int | None = None) -> list[float | None]:
    """An entry's value of each objective (after epoch `upto`, when given): a trial's own, a point's the
    mean of its seeds' (None unless every seed has one; a pruned point's, at the epoch it was pruned)."""
    members = entry.members if isinstance(entry, Point) else [entry]
    if upto is None and isinstance(entry, Point) and entry.status == "pruned":
        upto = entry.pruned_epoch
    return seeds_values(members, objectives, how, upto)


def seeds_values(members: Sequence[Any], objectives: Objectives, how: str = "last",
                 upto: int | None = None) -> list[float | None]:
    """The mean of the trials' (a point's seeds') values of each objective; None unless every one has one."""
    out: list[float | None] = []
    for metric, goal in objectives:
        values = [trial_value(m, metric, goal, how, upto) for m in members]
        if None in values or len(set(values)) == 1:  # a count every seed shares stays a count
            out.append(None if None in values else values[0])
        else:
            out.append(mean_std([v for v in values if v is not None])[0])
    return out


def front_ranks(values: Sequence[Sequence[float]], goals: Sequence[str]) -> list[int]:
    """The non-dominated rank of each row of `values` (one column per objective, `goals` max or min):
    1 for the Pareto front, 2 for the front once those are removed, and so on. A row dominates another
    when it is at least as good on every objective and better on one; equal rows share a rank."""
    if not len(values):
        return []
    signs = np.array([-1.0 if g == "max" else 1.0 for g in goals])
    costs = np.asarray(values, dtype=float) * signs  # every objective minimised
    no_worse = (costs[:, None, :] <= costs[None, :, :]).all(axis=2)
    better = (costs[:, None, :] < costs[None, :, :]).any(axis=2)
    dominates = no_worse & better  # dominates[i, j]: row i dominates row j
    ranks = np.zeros(len(costs), dtype=int)
    left = np.ones(len(costs), dtype=bool)
    rank = 0
    while left.any():
        rank += 1
        beaten = (dominates[left][:, left]).any(axis=0)  # dominated by a row still left
        layer = np.flatnonzero(left)[~beaten]
        ranks[layer] = rank
        left[layer] = False
    return ranks.tolist()


def ranked_front(items: list[Entry], objectives: Objectives, how: str = "last") -> dict[str, int]:
    """The front rank of each completed entry with a value for every objective, by entry id."""
    scored = [(e, entry_values(e, objectives, how)) for e in items if e.status == "completed"]
    scored = [(e, v) for e, v in scored if None not in v]
    ranks = front_ranks([v for _, v in scored], [g for _, g in objectives])  # type: ignore[misc]
    return {e.id: r for (e, _), r in zip(scored, ranks, strict=True)}


def by_front(items: list[Entry], ranks: dict[str, int], objectives: Objectives, how: str = "last") -> list[Entry]:
    """Entries in front order: rank 1 first, within a rank best first on the first objective; then the
    entries without a rank (pruned by their first objective's value, then diverged, failed, unfinished)."""
    metric, goal = objectives[0]
    order = {"pruned": 1, "diverged": 2, "failed": 3}

    def key(e: Entry) -> tuple[int, int, float, str]:
        value = entry_values(e, objectives[:1], how)[0]
        signed = 0.0 if value is None else -value if goal == "max" else value
        if e.id in ranks:
            return 0, ranks[e.id], signed, e.id
        return order.get(e.status, 4), 0, signed if value is not None else math.inf, e.id

    return sorted(items, key=key)


def pick(front: list[Entry], objectives: Objectives, rule: PickRule, how: str = "last") -> Entry | None:
    """The front point `rule` picks: best: the best on rule.objective (default the first objective);
    within: of the points within rule.tolerance of that best value, the best on rule.then (ties: the
    better on rule.objective, then the lower id)."""
    if not front:
        return None
    goals = dict(objectives)
    first = rule.objective or objectives[0][0]

    def signed(e: Entry, metric: str) -> float:
        [value] = entry_values(e, [(metric, goals[metric])], how)
        assert value is not None  # a front point has every value
        return -value if goals[metric] == "max" else value

    best = min(front, key=lambda e: (signed(e, first), e.id))
    if rule.rule == "best" or rule.then is None:
        return best
    limit = signed(best, first) + rule.tolerance
    close = [e for e in front if signed(e, first) <= limit + 1e-12]
    return min(close, key=lambda e: (signed(e, rule.then), signed(e, first), e.id))  # type: ignore[arg-type]


def pick_said(rule: PickRule, objectives: Objectives) -> str:
    """The pick rule in words, for best.yaml's header and the console."""
    first = rule.objective or objectives[0][0]
    goals = dict(objectives)
    if rule.rule == "best" or rule.then is None:
        return f"the front point with the {'highest' if goals[first] == 'max' else 'lowest'} {first}"
    then = rule.then
    return (f"of the front points within {rule.tolerance:g} of the best {first}, the one with the "
            f"{'highest' if goals[then] == 'max' else 'lowest'} {then}")


def is_rung(epoch: int, min_epochs: int, reduction: int) -> bool:
    """True at the epochs successive halving judges: min_epochs, min_epochs * reduction, ... (Optuna's
    SuccessiveHalvingPruner's rungs)."""
    rung = min_epochs
    while rung < epoch:
        rung *= reduction
    return rung == epoch


def crowding_distances(values: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II's crowding distance of each row of one front (Deb et al. 2002, as Optuna's NSGA-II computes
    it): per objective, the rows sorted by value, each row's gap between its two neighbours over the
    objective's range (the two ends: infinite), summed over the objectives; an objective on which every
    row is equal adds nothing. Larger: a row in a sparser part of the front."""
    costs = np.asarray(values, dtype=float).reshape(len(values), -1)
    distance = np.zeros(len(costs))
    for column in costs.T:
        if column.min() == column.max():
            continue
        order = np.argsort(column, kind="stable")
        padded = np.concatenate([[-np.inf], column[order], [np.inf]])
        distance[order] += (padded[2:] - padded[:-2]) / (column.max() - column.min())
    return distance.tolist()


def rung_keeps(at_rung: dict[str, list[float]], point: str, goals: Sequence[str], reduction: int) -> bool:
    """Successive halving on several objectives (MO-ASHA's NSGA-II selection, Schmucker et al. 2021):
    whether `point` goes on from a rung, given the values at that rung of every point that reached it
    (`point` among them). The points are ordered by Pareto front rank, then within a front by crowding
    distance (the spread-out points first, the ends of a front before all); the first 1/reduction of
    them go on (at least one: the first to reach a rung goes on when it is on that rung's front, as
    Optuna's SuccessiveHalvingPruner promotes the best of its first trials), and so does every point
    that ties the last of them on both. Without the crowding order a whole front ties: on accuracy
    against model size, each size's most accurate trial is on the front at every rung and would never
    be pruned."""
    ids = list(at_rung)
    ranks = front_ranks([at_rung[i] for i in ids], goals)
    crowding = [0.0] * len(ids)
    for rank in set(ranks):
        members = [n for n, r in enumerate(ranks) if r == rank]
        for n, d in zip(members, crowding_distances([at_rung[ids[m]] for m in members]), strict=True):
            crowding[n] = d
    order = sorted((ranks[n], -crowding[n]) for n in range(len(ids)))
    last = order[max(1, len(ids) // reduction) - 1]
    mine = ids.index(point)
    return (ranks[mine], -crowding[mine]) <= last
