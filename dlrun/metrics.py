"""Metric names and directions: the one home for what a task records and whether bigger is better.

Early stopping (`mode: auto`), sweep ranking (`sweep.goal`), the best-epoch summary metrics and the
sweep heat map all ask `direction()`; nothing else guesses from a metric's name.
"""

from __future__ import annotations

from typing import Literal

Direction = Literal["min", "max"]

LOWER_IS_BETTER = ("loss", "mae", "mse", "sse", "error")
HIGHER_IS_BETTER = ("accuracy", "auc", "precision", "recall", "f1")
# where a number was measured, in the order they are stripped: best_val_accuracy -> accuracy
PREFIXES = ("best_", "val_", "test_", "train_")


class UnknownMetric(ValueError):
    """A metric whose direction is not known; the message lists the known names."""


def base_name(metric: str) -> str:
    """The metric without the split prefixes: `best_val_accuracy` -> `accuracy`."""
    name = metric
    for prefix in PREFIXES:
        name = name.removeprefix(prefix)
    return name


def direction(metric: str) -> Direction:
    """`min` for losses and errors, `max` for accuracy-like scores. Raises UnknownMetric otherwise."""
    name = base_name(metric)
    if name in LOWER_IS_BETTER:
        return "min"
    if name in HIGHER_IS_BETTER:
        return "max"
    known = ", ".join((*LOWER_IS_BETTER, *HIGHER_IS_BETTER))
    raise UnknownMetric(f"'{metric}' has no known direction; known metrics (with an optional val_, test_ or "
                        f"best_ prefix): {known}")


def improves(value: float, best: float, goal: Direction, min_delta: float = 0.0) -> bool:
    """True when `value` beats `best` by more than `min_delta` in direction `goal` (Keras' rule)."""
    return value - best > min_delta if goal == "max" else best - value > min_delta


def task_metric(task: str) -> str:
    """The metric a task records besides its loss: accuracy (classification) or mae (regression)."""
    return "accuracy" if task == "classification" else "mae"


def epoch_metrics(task: str) -> tuple[str, ...]:
    """The metrics recorded after every epoch (what early stopping can monitor)."""
    name = task_metric(task)
    return ("loss", name, "val_loss", f"val_{name}")


def epoch_columns(task: str) -> list[str]:
    """The columns of metrics.csv: epoch, the epoch metrics, the learning rate, seconds."""
    return ["epoch", *epoch_metrics(task), "lr", "seconds"]


def best_metric(task: str) -> str:
    """The validation metric whose best epoch the summary reports (`best_<name>`)."""
    return f"val_{task_metric(task)}" if task == "classification" else "val_loss"


def summary_metrics(task: str) -> list[str]:
    """The summary metrics a sweep can rank by."""
    name = task_metric(task)
    return [*epoch_metrics(task), "test_loss", f"test_{name}", f"best_{best_metric(task)}"]
