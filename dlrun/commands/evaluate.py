"""`dlrun evaluate`: score saved weights (a run, or a weights file with a config) on a data set,
with per-class precision/recall/F1 and a confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlrun.commands.saved import run_feature_stats, target_config
from dlrun.config import load_config
from dlrun.config.outputs import is_binary_output
from dlrun.data import load_checked
from dlrun.engine.fit import measure, seeded_model
from dlrun.engine.predictions import class_probabilities
from dlrun.errors import RunDirError
from dlrun.metrics import binary_scores
from dlrun.store import files, names
from dlrun.ui.console import Reporter, metrics_table, rows_table
from dlrun.weights import load_into, read_weights

MAX_CONFUSION_CLASSES = 50  # past this a matrix is unreadable (and n^2 cells): the top confusions instead
TOP_CONFUSIONS = 50
MAX_PER_CLASS_ROWS = 50  # the console shows the lowest-F1 classes past this; eval.json has them all


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int,
                          names: list[str] | None = None) -> dict[str, Any]:
    """Per-class precision, recall, F1 and support, and the confusion matrix (rows: true class) up to
    MAX_CONFUSION_CLASSES classes; past that the TOP_CONFUSIONS most frequent (true, predicted) pairs,
    counted without an n x n matrix (time and memory grow with the examples, not the classes squared)."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    pairs, counts = np.unique(y_true * num_classes + y_pred, return_counts=True)
    true_k, pred_k = np.divmod(pairs, num_classes)
    right = true_k == pred_k
    tp = np.bincount(true_k[right], weights=counts[right], minlength=num_classes)
    actual, predicted = np.bincount(y_true, minlength=num_classes), np.bincount(y_pred, minlength=num_classes)
    labels = [names[k] if names and k < len(names) else str(k) for k in range(num_classes)]
    per_class: dict[str, dict[str, float]] = {}
    for k, label in enumerate(labels):
        precision = float(tp[k] / predicted[k]) if predicted[k] else 0.0
        recall = float(tp[k] / actual[k]) if actual[k] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": int(actual[k])}
    if num_classes <= MAX_CONFUSION_CLASSES:
        matrix = np.zeros((num_classes, num_classes), np.int64)
        matrix[true_k, pred_k] = counts
        return {"per_class": per_class, "confusion_matrix": matrix.tolist()}
    wrong = np.flatnonzero(~right)
    top = wrong[np.argsort(-counts[wrong], kind="stable")[:TOP_CONFUSIONS]]
    return {"per_class": per_class, "top_confusions": [
        {"true": labels[true_k[i]], "predicted": labels[pred_k[i]], "count": int(counts[i])} for i in top]}


def evaluate(target: str | Path, config: str | Path | None = None, overrides: list[str] | None = None,
             out: str | Path | None = None, reporter: Reporter | None = None,
             use_cache: bool = True) -> dict[str, Any]:
    """Score saved weights on the config's test split (the training data when it has none).

    Args:
        target: A run directory, or a weights file (.weights.h5, .keras, legacy Keras-2 .h5).
        config: The config for the architecture and data (needed for a weights file; a run uses its own).
        overrides: `KEY=VALUE` strings applied to the config.
        out: Where eval.json and confusion.png go (needed for a weights file; default: the run directory).
        reporter: Where the tables go (default: lines and tables on stdout, no progress
            bars; `dlrun.ui.console.Reporter(json_mode=True)` prints nothing).
        use_cache: Serve the data from the data cache.

    Returns:
        The eval object: loss, accuracy (or mae), per-class precision/recall/F1/support and the
        confusion matrix, the weights, the config and the split it was measured on.

    Raises:
        WeightsError: a missing or damaged file, or weights from another architecture.
        RunDirError, ConfigError, DataError: a bad target, config or data.
    """
    reporter = reporter or Reporter(live=False)
    target = Path(target)
    config_path, run = target_config(target, config)
    weights_path = None if run is not None else target
    out_dir = Path(out) if out else (target if target.is_dir() else None)
    if out_dir is None:
        raise RunDirError(f"{target} is a weights file: give --out DIR for eval.json and confusion.png")
    lc = load_config(config_path, overrides)
    cfg = lc.config
    read_weights(weights_path or target)  # a missing or damaged file fails here, before data and TensorFlow
    with reporter.progress() as progress:
        data = load_checked(lc, use_cache, progress, run_feature_stats(run))
        model = seeded_model(lc, data, distributed=False)
        source = load_into(model, weights_path or target, progress).path
    x, y = data.eval_split()
    result: dict[str, Any] = measure(model, x, y, cfg.train.batch_size, cfg.task)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.task == "classification":
        assert data.num_classes is not None
        probabilities = class_probabilities(model, x, cfg)
        result.update(classification_report(np.asarray(y), probabilities.argmax(axis=1), data.num_classes,
                                            data.class_names))
        if is_binary_output(cfg):  # one sigmoid unit: AUC, and precision/recall of class 1 at 0.5
            result.update(binary_scores(y, probabilities[:, 1]))
    result.update(weights=str(source), config=str(config_path), examples=int(len(x)),
                  split="train" if data.test_is_train else "test")
    files.write_json(out_dir / names.EVAL, result)
    _confusion_plot(result, out_dir / names.CONFUSION_PLOT, f"{cfg.name}: {source.name}")
    _report(reporter, result, out_dir)
    return result


def _confusion_plot(result: dict[str, Any], path: Path, title: str) -> None:
    """confusion.png: the matrix, or past its size the most frequent confusions as bars (none for regression)."""
    if "confusion_matrix" in result:
        from dlrun.ui.plots import confusion_plot

        confusion_plot(result["confusion_matrix"], list(result["per_class"]), path, title)
    elif "top_confusions" in result:
        from dlrun.ui.plots import top_confusions_plot

        title += f": the top confusions of {len(result['per_class']):,} classes"
        top_confusions_plot(result["top_confusions"], path, title)


def _report(reporter: Reporter, result: dict[str, Any], out_dir: Path) -> None:
    headline = {k: result[k] for k in ("loss", "accuracy", "auc", "precision", "recall", "mae", "examples")
                if k in result}
    reporter.table(metrics_table(f"evaluation ({result['split']} split) -> {out_dir}", headline))
    if "per_class" in result:
        rows = [[label, v["precision"], v["recall"], v["f1"], v["support"]] for label, v in result["per_class"].items()]
        title = "per class"
        if len(rows) > MAX_PER_CLASS_ROWS:
            title = f"per class: the {MAX_PER_CLASS_ROWS} lowest F1 of {len(rows):,} (all in eval.json)"
            rows = sorted(rows, key=lambda r: r[3])[:MAX_PER_CLASS_ROWS]
        reporter.table(rows_table(title, ["class", "precision", "recall", "f1", "support"], rows))
