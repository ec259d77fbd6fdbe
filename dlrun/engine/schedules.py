"""The learning rate an optimizer trains with: a constant, the Keras-2 `decay` as Keras 3's
InverseTimeDecay, or a configured schedule (all over optimizer steps, so a resumed run, whose
optimizer step count comes back with the checkpoint, continues the schedule exactly); and the
plateau rule of `train.reduce_lr_on_plateau`, decided from the recorded epoch rows."""

from __future__ import annotations

from typing import Any

from dlrun.config.optimizer_schema import OptimizerConfig, ReduceLROnPlateau
from dlrun.engine import backend
from dlrun.metrics import direction, improves


def learning_rate(opt: OptimizerConfig) -> Any:
    """`optimizer.lr` as a float, or the LearningRateSchedule that starts from it."""
    lr = float(opt.lr)
    schedules = backend.keras().optimizers.schedules
    if opt.decay > 0:  # Keras 2: lr / (1 + decay * iterations)
        return schedules.InverseTimeDecay(lr, decay_steps=1, decay_rate=opt.decay)
    s = opt.schedule
    if s is None:
        return lr
    if s.name == "exponential":
        return schedules.ExponentialDecay(lr, s.decay_steps, s.decay_rate, staircase=s.staircase)
    if s.name == "inverse_time":
        return schedules.InverseTimeDecay(lr, s.decay_steps, s.decay_rate, staircase=s.staircase)
    if s.name == "cosine":
        return schedules.CosineDecay(lr, s.decay_steps, alpha=s.alpha, warmup_target=s.warmup_target,
                                     warmup_steps=s.warmup_steps)
    assert s.boundaries is not None and s.values is not None  # checks.check_schedule
    return schedules.PiecewiseConstantDecay(list(s.boundaries), [float(v) for v in s.values])


def current_lr(optimizer: Any) -> float:
    """The learning rate the optimizer's next step uses (a schedule evaluated at its step count)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # under a LossScaleOptimizer
    return float(backend.keras().ops.convert_to_numpy(inner.learning_rate))


def plateau_lr(rows: list[dict[str, Any]], initial: float, rule: ReduceLROnPlateau) -> float:
    """The lr after the recorded epochs under Keras' ReduceLROnPlateau rule (no cooldown): once the
    monitored metric has not improved by more than min_delta for `patience` epochs after its best
    (or the last cut), the lr is multiplied by `factor`, never below min_lr. Replayed from the rows,
    a resumed run decides exactly as an uninterrupted one."""
    goal = direction(rule.monitor)
    lr, best, wait = initial, None, 0
    for row in rows:
        value = row.get(rule.monitor)
        if value in (None, ""):
            continue
        value = float(value)
        if best is None or improves(value, best, goal, rule.min_delta):
            best, wait = value, 0
            continue
        wait += 1
        if wait >= rule.patience and lr > rule.min_lr:
            lr, wait = max(lr * rule.factor, rule.min_lr), 0
    return lr


def set_lr(optimizer: Any, lr: float) -> None:
    """Assign a new constant learning rate (the plateau rule's cut)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    inner.learning_rate.assign(lr)
