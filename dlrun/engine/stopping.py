"""Early stopping, decided from the recorded epoch rows (so a resumed run decides exactly as an
uninterrupted one would). The direction of the monitored metric comes from `dlrun.metrics`."""

from __future__ import annotations

from typing import Any

from dlrun.config.schema import EarlyStopping, ExperimentConfig
from dlrun.metrics import direction, improves


def _best_index(rows: list[dict[str, Any]], es: EarlyStopping) -> tuple[int, int] | None:
    """(index of the best epoch, number of epochs recorded) for `es.monitor`, where an epoch counts
    as better only when it beats the best so far by more than `min_delta` (Keras' rule)."""
    values = [float(r[es.monitor]) for r in rows if r.get(es.monitor) not in (None, "")]
    if not values:
        return None
    goal = direction(es.monitor) if es.mode == "auto" else es.mode
    best_index, best = 0, values[0]
    for i, value in enumerate(values[1:], start=1):
        if improves(value, best, goal, es.min_delta):
            best_index, best = i, value
    return best_index, len(values)


def early_stop_due(rows: list[dict[str, Any]], es: EarlyStopping | None) -> bool:
    """True when `es.monitor` has not improved by `min_delta` for `patience` epochs.

    Keras counts the epochs since the best one and stops once that count reaches `patience`, but
    never at the first epoch: so `patience: 0` stops at the first epoch that does not improve,
    exactly as `patience: 1` does.
    """
    found = _best_index(rows, es) if es is not None else None
    if found is None or es is None:
        return False
    best, recorded = found
    return recorded - 1 - best >= max(es.patience, 1)


def best_epoch(rows: list[dict[str, Any]], es: EarlyStopping) -> int | None:
    """The 1-based epoch early stopping regards as best so far (None when not recorded)."""
    found = _best_index(rows, es)
    return None if found is None else found[0] + 1


def restores_best(cfg: ExperimentConfig) -> bool:
    """True when the run ends with its best epoch's weights (early_stopping.restore_best_weights)."""
    es = cfg.train.early_stopping
    return es is not None and es.restore_best_weights


def ending(rows: list[dict[str, Any]], cfg: ExperimentConfig, kept_epoch: int | None,
           ended_itself: bool = True) -> dict[str, Any]:
    """How a run ended, for summary.json: `stopped_early` (and `stopped_epoch`, the last epoch it ran),
    `kept_epoch` (whose weights the run ends with, and whose metrics the summary reports), and `stopping`:
    the sentence that says so ("stopped early at epoch 10 of 15 (val_accuracy did not improve by 0.01 for
    2 epochs); kept the weights of epoch 8 (val_accuracy 0.9712)"), None when it ran every epoch and kept
    the last without early stopping. `ended_itself` is False for a pruned or diverged run (early stopping
    did not end it)."""
    es, epochs = cfg.train.early_stopping, cfg.train.epochs
    stopped = es is not None and ended_itself and len(rows) < epochs and early_stop_due(rows, es)
    parts = []
    if stopped and es is not None:
        waited = len(rows) - (best_epoch(rows, es) or 0)
        by = f" by {es.min_delta:g}" if es.min_delta else ""
        parts.append(f"stopped early at epoch {len(rows)} of {epochs} ({es.monitor} did not improve{by} for "
                     f"{waited} epoch{'' if waited == 1 else 's'})")
    if es is not None and kept_epoch is not None and (stopped or restores_best(cfg)):
        kept = next((r for r in rows if int(r["epoch"]) == kept_epoch), {})
        value = kept.get(es.monitor)
        shown = f" ({es.monitor} {float(value):.4f})" if value not in (None, "") else ""
        parts.append(f"kept the weights of epoch {kept_epoch}{shown}")
    return {"stopped_early": stopped, "stopped_epoch": len(rows) if stopped else None, "kept_epoch": kept_epoch,
            "stopping": "; ".join(parts) or None}
