"""Cross-field checks of the learning-rate rules (optimizer.decay, optimizer.schedule,
train.reduce_lr_on_plateau) and of feature scaling (data.normalize, data.categorical). Part of the
static checks (checks.STATIC_CHECKS): `dlrun validate` catches them."""

from __future__ import annotations

from pathlib import Path

from dlrun.config.applications import SAVED_MODEL_FILE
from dlrun.config.optimizer_schema import SCHEDULE_PARAMS
from dlrun.config.sourcemap import LoadedConfig
from dlrun.errors import Problem
from dlrun.metrics import epoch_metrics, selection_problem

TABULAR_SOURCES = ("csv", "table")


def check_schedule(lc: LoadedConfig) -> list[Problem]:
    """A schedule gets the parameters it needs and no others; piecewise boundaries increase, one more
    value than boundaries, starting at optimizer.lr; decay and a schedule exclude each other."""
    opt = lc.config.optimizer
    s = opt.schedule
    if s is None:
        return []
    if opt.decay > 0:
        return [lc.source.problem("optimizer.decay", "decay is the Keras-2 inverse_time schedule; set either "
                                  "optimizer.decay or optimizer.schedule, not both")]
    required, optional = SCHEDULE_PARAMS[s.name]
    given = {k for k in s.model_fields_set if k != "name"}  # what the file says: a key of another kind is a mistake
    problems = [lc.source.problem(f"optimizer.schedule.{k}", f"{s.name} needs {k}")
                for k in sorted(required) if getattr(s, k) is None]
    takes = ", ".join(sorted(required | optional))
    problems += [lc.source.problem(f"optimizer.schedule.{k}", f"{s.name} does not take {k} (it takes {takes})")
                 for k in sorted(given - required - optional)]
    if s.name == "piecewise" and s.boundaries and s.values:
        if any(b >= a for b, a in zip(s.boundaries, s.boundaries[1:], strict=False)):
            problems.append(lc.source.problem("optimizer.schedule.boundaries", "boundaries must increase"))
        if len(s.values) != len(s.boundaries) + 1:
            problems.append(lc.source.problem("optimizer.schedule.values", f"needs {len(s.boundaries) + 1} values "
                                              f"(one more than boundaries), got {len(s.values)}"))
        elif s.values[0] != opt.lr:
            problems.append(lc.source.problem("optimizer.schedule.values", f"the first value is the initial lr: "
                                              f"{s.values[0]} differs from optimizer.lr {opt.lr}; make them equal"))
    return problems


def check_plateau(lc: LoadedConfig) -> list[Problem]:
    """The plateau rule watches a validation metric that training records, and sets a constant lr
    (so it cannot follow a schedule or decay at the same time)."""
    rule, cfg = lc.config.train.reduce_lr_on_plateau, lc.config
    if rule is None:
        return []
    key = "train.reduce_lr_on_plateau.monitor"
    reason = selection_problem(rule.monitor)
    if reason:
        return [lc.source.problem(key, reason)]
    allowed = [m for m in epoch_metrics(cfg.task) if m.startswith("val_")]
    if rule.monitor not in allowed:
        return [lc.source.problem(key, f"'{rule.monitor}' is not a recorded validation metric; use one of "
                                  f"{', '.join(allowed)}")]
    if cfg.data.validation == 0:
        return [lc.source.problem(key, f"'{rule.monitor}' needs a validation split but data.validation is 0; "
                                  "set data.validation (e.g. 0.1)")]
    if cfg.optimizer.schedule is not None or cfg.optimizer.decay > 0:
        return [lc.source.problem("train.reduce_lr_on_plateau", "the plateau rule sets the lr itself; drop "
                                  "optimizer.schedule / optimizer.decay, or the plateau rule")]
    return []


def check_feature_scaling(lc: LoadedConfig) -> list[Problem]:
    """standardize/minmax and categorical columns are for tables (csv, table); images keep
    normalize: true (divide by 255) or false."""
    data = lc.config.data
    problems = []
    if data.normalize in ("standardize", "minmax") and data.source not in TABULAR_SOURCES:
        problems.append(lc.source.problem("data.normalize", f"'{data.normalize}' is for tables (csv, table); for "
                                          f"{data.source} images use normalize: true (pixels / 255) or false"))
    if data.categorical and data.source != "csv":
        problems.append(lc.source.problem("data.categorical", "categorical columns are for csv files (a "
                                          "data.table holds numbers only)"))
    if data.categorical and data.target in data.categorical:
        problems.append(lc.source.problem("data.categorical", f"'{data.target}' is the target (data.target), "
                                          "not a feature; leave it out of data.categorical"))
    return problems


def check_saved_model_frozen(lc: LoadedConfig) -> list[Problem]:
    """A SavedModel base is a fixed TensorFlow function (keras.layers.TFSMLayer): it cannot train."""
    base = lc.config.model.base
    if base is None or not base.trainable or not base.from_ or not Path(base.from_, SAVED_MODEL_FILE).is_file():
        return []
    return [lc.source.problem("model.base.trainable", f"{base.from_} is a TensorFlow SavedModel, which Keras 3 "
                              "reads as a fixed function (TFSMLayer) whose weights cannot be trained; drop "
                              "trainable: true (it is used frozen), or give the model as a .keras file or run "
                              "directory to fine-tune it")]


def check_augment_images(lc: LoadedConfig) -> list[Problem]:
    """data.augment changes images; a table (csv, table) has none."""
    data = lc.config.data
    if data.augment is None or data.source not in TABULAR_SOURCES:
        return []
    return [lc.source.problem("data.augment", f"augmentation flips, rotates and zooms images; '{data.source}' is "
                              "a table of features: remove data.augment")]
