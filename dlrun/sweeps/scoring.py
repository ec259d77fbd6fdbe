"""What a sweep ranks and prunes on: a trial's score, a pure function of its epoch rows (metrics.csv),
so the value the pruner judged while the trial ran and the value it is ranked on at the end are the
same number, and the mean ± std of a point's seeds. No TensorFlow here.

`sweep.score: last` scores a trial by its last epoch (under restore_best_weights, the kept epoch: the
weights the run ends with); `best` by its best epoch. A `best_` metric (`best_val_accuracy`) is the
running best of its epoch metric whichever is chosen. While a trial runs, its score after epoch e is the
same function of rows 1..e: the value of epoch e, or the best so far.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def _number(value: Any) -> float | None:
    try:
        number = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and math.isfinite(number) else None


@dataclass(frozen=True)
class Scoring:
    """How a sweep scores a trial: `metric` (sweep.metric), `goal` (max or min), `how` (sweep.score)."""

    metric: str
    goal: str
    how: str = "last"

    @property
    def column(self) -> str:
        """The epoch metric the score is read from: `best_val_accuracy` -> `val_accuracy`."""
        return self.metric.removeprefix("best_")

    @property
    def running_best(self) -> bool:
        """True when the score is the best epoch so far (sweep.score best, or a `best_` metric)."""
        return self.how == "best" or self.metric.startswith("best_")

    def describe(self) -> str:
        """What is judged and ranked, for the console: `val_accuracy (running best)` or `val_accuracy (last epoch)`."""
        return f"{self.column} ({'running best' if self.running_best else 'last epoch'})"

    def score(self, rows: Sequence[Mapping[str, Any]], upto: int | None = None,
              kept_epoch: int | None = None) -> float | None:
        """The score of a trial whose epoch rows are `rows` (1-based epochs in order), after epoch `upto`
        (default: every row), or None when no such epoch has a finite value. `kept_epoch`: the epoch whose
        weights the run kept (restore_best_weights); a finished trial's `last` is that epoch's value."""
        rows = list(rows if upto is None else rows[:upto])
        if self.running_best:
            values = [v for v in (_number(r.get(self.column)) for r in rows) if v is not None]
            return (max if self.goal == "max" else min)(values) if values else None
        if kept_epoch is not None and upto is None:
            rows = [r for r in rows if str(r.get("epoch")) == str(kept_epoch)] or rows
        return _number(rows[-1].get(self.column)) if rows else None


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """The mean and the sample standard deviation (ddof 1; None for fewer than two values)."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def standard_error(std: float | None, n: int) -> float | None:
    """The standard error of a mean of `n` values with sample std `std`."""
    return std / math.sqrt(n) if std is not None and n > 1 else None
