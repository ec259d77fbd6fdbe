"""Metric names and directions: the one home for what a task records, where each number was
measured, which numbers may choose anything, and whether bigger is better.

Early stopping (`mode: auto`), sweep ranking (`sweep.goal`), the best-epoch summary metrics and the
sweep heat map all ask `direction()`; nothing else guesses from a metric's name.

Where a number was measured is its prefix: none (the training epoch, as Keras logs it), `val_` (the
validation split), `test_` (the test split: only ever evaluated, never used to choose anything),
`train_` (final metrics on the training data, when there is no test split) and `best_` (the best
epoch's validation value).
"""

from __future__ import annotations

from typing import Any, Literal

Direction = Literal["min", "max"]

LOWER_IS_BETTER = ("loss", "mae", "mse", "sse", "error")
HIGHER_IS_BETTER = ("accuracy", "auc", "precision", "recall", "f1")
# where a number was measured, in the order they are stripped: best_val_accuracy -> accuracy
PREFIXES = ("best_", "val_", "test_", "train_")
FINAL_PREFIXES = ("test_", "train_")  # final metrics: on the test split, or on the training data without one


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


def final_prefix(has_test: bool) -> str:
    """The prefix of the final metrics: `test_` when there is a test split, else `train_` (they are
    then measured on the training data and must not be read as held-out numbers)."""
    return "test_" if has_test else "train_"


def final_names(task: str, has_test: bool) -> tuple[str, str]:
    """The final metrics' names: (`test_loss`, `test_accuracy`), or `train_...` without a test split."""
    prefix = final_prefix(has_test)
    return f"{prefix}loss", f"{prefix}{task_metric(task)}"


def summary_metrics(task: str) -> list[str]:
    """Every metric a run's summary can hold (the test ones only when the data has a test split)."""
    name = task_metric(task)
    return [*epoch_metrics(task), "test_loss", f"test_{name}", "train_loss", f"train_{name}",
            f"best_{best_metric(task)}"]


def rankable_metrics(task: str) -> list[str]:
    """The summary metrics a sweep may rank by: the epoch metrics and the best validation value, never
    a test (or final training) metric."""
    return [*epoch_metrics(task), f"best_{best_metric(task)}"]


def measured_on(metric: str) -> str:
    """The split a metric is measured on: `validation`, `test` or `train` (an epoch's own training metrics,
    and the final metrics of a run without a test split)."""
    name = metric.removeprefix("best_")
    return "validation" if name.startswith("val_") else "test" if name.startswith("test_") else "train"


def chance_accuracy(metric: str, class_counts: dict[str, list[int]] | None) -> float | None:
    """The accuracy of always answering the most common class (the majority-class rate) of the split
    `metric` is measured on: the accuracy a model reaches without learning anything from its inputs.
    `class_counts` is a run summary's record ({split: examples of each class}); None when it has none."""
    counts = (class_counts or {}).get(measured_on(metric))
    return max(counts) / sum(counts) if counts and sum(counts) else None


def on_test_split(metric: str) -> bool:
    """True for a number measured on the test split (`test_accuracy`, `best_test_loss`, ...)."""
    return metric.removeprefix("best_").startswith("test_")


def needs_validation(metric: str) -> bool:
    """True for a number measured on the validation split (`val_loss`, `best_val_accuracy`)."""
    return metric.removeprefix("best_").startswith("val_")


def validation_counterpart(metric: str) -> str:
    """The validation metric that measures what a test metric does: `test_accuracy` -> `val_accuracy`."""
    return "val_" + base_name(metric)


def selection_problem(metric: str) -> str | None:
    """Why `metric` may not choose anything (rank trials, pick a best epoch), or None when it may."""
    if on_test_split(metric):
        return (f"'{metric}' is measured on the test split, which is only ever evaluated, never used to choose; "
                f"rank on '{validation_counterpart(metric)}' (the validation split) instead")
    return None


def binary_scores(y_true: Any, p_positive: Any, threshold: float = 0.5) -> dict[str, float]:
    """AUC (the probability that a random positive scores above a random negative, ties counting half),
    and precision and recall of class 1 at `threshold`, for labels 0/1 and predicted P(class 1)."""
    import numpy as np

    y = np.asarray(y_true).reshape(-1).astype(bool)
    p = np.asarray(p_positive, np.float64).reshape(-1)
    predicted = p >= threshold
    tp = int(np.sum(predicted & y))
    out = {"precision": tp / int(predicted.sum()) if predicted.any() else 0.0,
           "recall": tp / int(y.sum()) if y.any() else 0.0}
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives and negatives:
        order = np.argsort(p, kind="mergesort")
        ranks = np.empty(len(p), np.float64)
        ranks[order] = np.arange(1, len(p) + 1)
        for value in np.unique(p[order][np.r_[False, np.diff(p[order]) == 0]]):  # tied scores share a rank
            ranks[p == value] = ranks[p == value].mean()
        out["auc"] = float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))
    return {k: float(v) for k, v in out.items()}
