"""Checks of a sweep: swept keys that exist, ranking on validation numbers, ranges that can be sampled,
the trial count random and tpe need, a refinement that has a numeric key to refine, pruning that leaves
epochs to prune. No Optuna here: `dlrun validate` answers at once."""

from __future__ import annotations

import math
from typing import Any

from dlrun.config.keys import is_config_key
from dlrun.config.sourcemap import LoadedConfig
from dlrun.config.sweep_schema import OBJECTIVE_EXTRAS, Distribution, SweepConfig, samplable, value_list
from dlrun.errors import Problem
from dlrun.metrics import direction, needs_validation, rankable_metrics, selection_problem

SAMPLED = ("random", "tpe", "nsga2")
MAX_TRIALS = 10_000
"""The most trials one sweep plans. Each trial is a full run directory (config, metrics, checkpoint, weights,
TensorBoard), a row of every rewrite of results.csv and a line of the leaderboard, and the grid's trials are
validated configs held in memory: past this, a sweep is a search, not an enumeration (random or tpe with
sweep.trials), or several sweeps."""


def is_numeric_list(values: list[Any]) -> bool:
    """A list of at least two distinct numbers (booleans are not numbers here)."""
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    return numbers and len(set(values)) > 1


def numeric_keys(sweep: SweepConfig) -> list[str]:
    """The swept keys a refinement can narrow: numeric ranges and lists of numbers."""
    return [key for key, values in sweep.params.items()
            if (isinstance(values, Distribution) and values.choice is None) or is_numeric_list(value_list(values))]


def _range_problems(lc: LoadedConfig, key: str, dist: Distribution) -> list[Problem]:
    where = f"sweep.params.{key}"
    given = [k for k in ("log_uniform", "uniform", "int_", "choice") if getattr(dist, k) is not None]
    if len(given) != 1:
        return [lc.source.problem(where, "give exactly one of log_uniform, uniform, int or choice, e.g. "
                                  "{log_uniform: [1e-5, 10]}")]
    kind = dist.kind()
    if kind == "choice":
        return []
    low, high = getattr(dist, given[0])
    if low >= high:
        return [lc.source.problem(f"{where}.{kind}", f"low ({low:g}) must be below high ({high:g}); "
                                  f"write [{min(low, high):g}, {max(low, high):g}]" if low != high
                                  else f"low and high are both {low:g}; to fix the value, set it outside "
                                  "sweep.params")]
    if kind == "log_uniform" and low <= 0:
        return [lc.source.problem(f"{where}.{kind}", f"a log-uniform range must stay above 0 (got [{low:g}, "
                                  f"{high:g}]); start it at a small positive value such as 1e-6, or use uniform")]
    return []


def check_sweep_search(lc: LoadedConfig) -> list[Problem]:
    """Ranges only for random/tpe and each one samplable; trials for random/tpe; refine needs a numeric
    key; pruning needs an epoch after min_epochs."""
    sweep, where = lc.config.sweep, lc.source
    if sweep is None:
        return []
    problems: list[Problem] = []
    for key, values in sweep.params.items():
        if not isinstance(values, Distribution):
            continue
        problems += _range_problems(lc, key, values)
        if sweep.method not in SAMPLED and values.choice is None:
            problems.append(where.problem(f"sweep.params.{key}", f"a range is sampled: it needs sweep.search "
                                          f"random or tpe (this sweep is {sweep.method}); or give a list of "
                                          "values"))
    for key, values in sweep.params.items():
        if (sweep.method in SAMPLED or sweep.refine is not None) and not samplable(value_list(values)):
            problems.append(where.problem(f"sweep.params.{key}", "the search engine samples numbers, text, booleans "
                                          "or null; lists and mappings can be swept by grid or zip only"))
    if sweep.method in SAMPLED and sweep.trials is None:
        problems.append(where.problem("sweep.search" if "search" in sweep.model_fields_set else "sweep",
                                      f"search: {sweep.method} samples points: set sweep.trials (e.g. 16), "
                                      "or --trials N"))
    if sweep.refine is not None and sweep.params and not numeric_keys(sweep):
        problems.append(where.problem("sweep.refine", "refine narrows numeric keys around the best point, but "
                                      f"no swept key is numeric ({', '.join(sweep.params)}); drop sweep.refine"))
    if sweep.method in SAMPLED or sweep.refine is not None:
        for key in [k for k in sweep.params if k.split(".")[0] == "data"]:
            problems.append(where.problem(f"sweep.params.{key}", "random, tpe and refined sweeps share one data "
                                          "set: data keys can be swept by grid or zip only"))
    if sweep.method == "nsga2" and not sweep.objectives:
        problems.append(where.problem("sweep.search", "nsga2 searches several objectives: give sweep.objectives "
                                      "(e.g. [{metric: val_accuracy, goal: max}, {metric: params, goal: min}]), "
                                      "or use search: tpe for one metric"))
    problems += check_objectives(lc)
    problems += _size_problems(lc)
    epochs = lc.config.train.epochs
    if sweep.prune.method != "none" and sweep.prune.min_epochs >= epochs:
        problems.append(where.problem("sweep.prune.min_epochs", f"min_epochs {sweep.prune.min_epochs} leaves no "
                                      f"epoch to prune (train.epochs is {epochs}); set it below {epochs}"))
    return problems


def check_sweep_metric(lc: LoadedConfig) -> list[Problem]:
    """A sweep ranks on validation (or training) numbers, never on the test split."""
    sweep = lc.config.sweep
    reason = selection_problem(sweep.metric) if sweep is not None and sweep.metric is not None else None
    return [lc.source.problem("sweep.metric", reason)] if reason else []


def check_sweep_space(lc: LoadedConfig) -> list[Problem]:
    """Swept keys must be config keys; zip mode needs lists of equal length."""
    sweep, problems = lc.config.sweep, []
    if sweep is None:
        return []
    for key in sweep.params:
        if not is_config_key(key):
            message = f"'{key}' is not a config key (e.g. optimizer.lr)"
            problems.append(lc.source.problem(f"sweep.params.{key}", message))
        elif key.split(".")[0] == "sweep":
            problems.append(lc.source.problem(f"sweep.params.{key}", "a sweep cannot sweep its own settings"))
    lengths = {key: len(values) for key, values in sweep.params.items() if isinstance(values, list)}
    if sweep.method == "zip" and len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        message = f"zip mode pairs values, so lists need equal lengths ({detail})"
        problems.append(lc.source.problem("sweep.params", message))
    return problems


def _size_problems(lc: LoadedConfig) -> list[Problem]:
    """At most MAX_TRIALS trials, refinement rounds and every seed of sweep.repeats included: counted from the
    lists' lengths (a grid is never expanded to be counted), with the way to search such a space instead."""
    sweep, where = lc.config.sweep, lc.source
    assert sweep is not None
    refined = sweep.refine.rounds * sweep.refine.trials if sweep.refine else 0
    seeds = f" x {sweep.repeats} seeds" if sweep.repeats > 1 else ""
    if sweep.method in SAMPLED:
        if ((sweep.trials or 0) + refined) * sweep.repeats <= MAX_TRIALS:
            return []
        what = "points" if seeds else "trials"
        return [where.problem("sweep.trials", f"{(sweep.trials or 0) + refined:,} {what}{seeds} are past the cap of "
                              f"{MAX_TRIALS:,} trials per sweep (each is a full run directory and a row of every "
                              f"results.csv and leaderboard); sample at most {MAX_TRIALS:,}, or split the search "
                              "into several sweeps")]
    sizes = [len(value_list(v)) for v in sweep.params.values()]
    planned = (math.prod(sizes) if sweep.method == "grid" else min(sizes, default=0)) + refined
    if planned * sweep.repeats <= MAX_TRIALS:
        return []
    shape = " x ".join(f"{n:,}" for n in sizes) if sweep.method == "grid" else f"{min(sizes, default=0):,} pairs"
    return [where.problem("sweep.params", f"a {sweep.method} of {planned * sweep.repeats:,} trials ({shape}"
                          f"{f' + {refined:,} refined' if refined else ''}{seeds}) is past the cap of {MAX_TRIALS:,} "
                          "trials per sweep (each is a full run directory and a row of every results.csv and "
                          "leaderboard); search the space instead: sweep.search: random or tpe with sweep.trials: "
                          "200 (--search random --trials 200; each list is then a choice), or a range "
                          "({log_uniform: [LOW, HIGH]}) in place of a long list")]


_DEFAULT_RANKING = (SweepConfig.model_fields["metric"].default, SweepConfig.model_fields["goal"].default)
PER_EPOCH_EXTRAS = ("epoch_seconds", "params")  # of OBJECTIVE_EXTRAS, known at every epoch (metrics.csv, the summary)


def check_objectives(lc: LoadedConfig) -> list[Problem]:
    """sweep.objectives: each a recorded metric (never the test split's) or one of OBJECTIVE_EXTRAS, one
    objective per metric, at least one a training metric, only per-epoch ones while pruning is on, metric
    and goal not given beside them unless they say the same, and a sweep.pick that names objectives."""
    sweep, where = lc.config.sweep, lc.source
    if sweep is None or not sweep.objectives:
        return []
    problems: list[Problem] = []
    recorded = rankable_metrics(lc.config.task)
    seen: dict[str, int] = {}
    for i, objective in enumerate(sweep.objectives):
        key, metric = f"sweep.objectives.{i}.metric", objective.metric
        reason = selection_problem(metric)
        if reason is None and metric not in (*recorded, *OBJECTIVE_EXTRAS):
            reason = f"'{metric}' is not measured; use one of {', '.join((*recorded, *OBJECTIVE_EXTRAS))}"
        if reason is None and metric in seen:
            reason = (f"objectives {seen[metric]} and {i} are both on {metric}; give each metric once (a metric "
                      "cannot be maximised and minimised at once, and twice counts it double)")
        if reason is None and sweep.prune.method != "none" and metric in OBJECTIVE_EXTRAS \
                and metric not in PER_EPOCH_EXTRAS:
            reason = (f"{metric} is measured once, at the end of a trial, but sweep.prune.method "
                      f"{sweep.prune.method} judges every epoch; drop the objective, or set prune method none")
        if reason:
            problems.append(where.problem(key, reason))
        seen.setdefault(metric, i)
    if sweep.prune.method == "median":
        problems.append(where.problem("sweep.prune.method", "several objectives are pruned by successive halving "
                                      "on Pareto front rank: set sweep.prune.method asha (or none)"))
    names = [o.metric for o in sweep.objectives]
    trained = [o for o in sweep.objectives if o.metric in recorded]
    if not trained:
        problems.append(where.problem("sweep.objectives", "at least one objective must be a metric training "
                                      f"records (one of {', '.join(recorded)})"))
    elif (sweep.metric, sweep.goal) not in (_DEFAULT_RANKING, (trained[0].metric, trained[0].goal)):
        # by value, not by what the file spells: a written config (sweep.yaml, best.yaml) spells every default
        problems.append(where.problem("sweep.metric", "sweep.objectives replaces sweep.metric and sweep.goal; "
                                      "drop them (or keep them equal to the first training objective, "
                                      f"{trained[0].metric} {trained[0].goal})"))
    pick = sweep.pick
    for field, value in (("objective", pick.objective), ("then", pick.then)):
        if value is not None and value not in names:
            problems.append(where.problem(f"sweep.pick.{field}", f"'{value}' is not one of sweep.objectives "
                                          f"({', '.join(names)})"))
    if pick.rule == "within" and pick.then is None:
        problems.append(where.problem("sweep.pick", "rule within needs `then`: the objective that decides "
                                      "among the points within tolerance, e.g. then: params"))
    return problems


def resolve_ranking(base: LoadedConfig) -> None:
    """Fill in what ranks trials when the config leaves it out: val_accuracy (classification) or
    val_loss (regression); the goal from the metric's direction."""
    sweep = base.config.sweep
    if sweep is None:
        return
    if sweep.objectives:  # the first objective training records ranks where one metric is asked for
        first = next((o for o in sweep.objectives if o.metric in rankable_metrics(base.config.task)), None)
        if first is not None:  # none: check_objectives says so
            sweep.metric, sweep.goal = first.metric, first.goal
            return
    if sweep.metric is None:
        sweep.metric = "val_loss" if base.config.task == "regression" else "val_accuracy"
    if sweep.goal is None and sweep.metric in rankable_metrics(base.config.task):
        sweep.goal = direction(sweep.metric)


def check_space(base: LoadedConfig) -> list[Problem]:
    """The space must be non-empty and rank by a validation or training metric that training records;
    train.threads is fixed per process, so it cannot vary between trials."""
    sweep, where = base.config.sweep, base.source
    if sweep is None or not sweep.params:
        return [where.problem("sweep.params", "nothing to sweep: give --lr/--lambda, or sweep.params in the "
                              "config (a dotted key and a list of values)")]
    if "train.threads" in sweep.params:
        return [where.problem("sweep.params.train.threads", "train.threads cannot be swept: TensorFlow fixes a "
                              "process's thread pools when it starts; set train.threads once for every trial")]
    if "seed" in sweep.params and sweep.repeats > 1:
        return [where.problem("sweep.params.seed", f"seed cannot be swept with sweep.repeats {sweep.repeats}: "
                              "the repeats derive each point's seeds from it (seed, seed+1, ...); drop one")]
    allowed = rankable_metrics(base.config.task)
    reason = selection_problem(sweep.metric)
    if reason is None and sweep.metric not in allowed:
        reason = f"'{sweep.metric}' is not recorded; use one of {', '.join(allowed)}"
    if reason is None and needs_validation(sweep.metric) and base.config.data.validation == 0:
        reason = (f"'{sweep.metric}' needs a validation split but data.validation is 0; set data.validation "
                  "(e.g. 0.1), or rank on the training loss with sweep.metric: loss")
    return [where.problem("sweep.metric", reason)] if reason else []
