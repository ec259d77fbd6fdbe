"""The `sweep:` section: the parameter space (value lists or ranges), how it is searched (grid, zip,
random, tpe, nsga2), early stopping of hopeless trials, coarse-to-fine rounds and the ranking (one
metric, or several objectives and the rule that picks one point of their Pareto front). Shapes and
ranges only; rules relating fields (a range with low >= high, trials missing) are in sweep_checks.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator, model_serializer

from dlrun.config.scale import BackendConfig
from dlrun.config.section import Float, Int, PosInt, Section, Seed


class Distribution(Section):
    """A range to sample a swept key from (`search: random | tpe`): exactly one of the four forms."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    log_uniform: tuple[Float, Float] | None = Field(default=None, description="[low, high], both > 0: sampled "
                                                    "uniformly in log space, e.g. a learning rate [1e-5, 10].")
    uniform: tuple[Float, Float] | None = Field(default=None, description="[low, high]: sampled uniformly.")
    int_: tuple[Int, Int] | None = Field(default=None, alias="int", description="[low, high]: an integer from "
                                         "low to high, both included.")
    choice: list[Any] | None = Field(default=None, min_length=1, description="One of these values (a plain "
                                     "list in sweep.params means the same).")

    @model_serializer(mode="wrap")
    def _only_the_form_given(self, handler: Any) -> Any:
        return {key: value for key, value in handler(self).items() if value is not None}

    def kind(self) -> str:
        """Which form this is: log_uniform, uniform, int or choice (the first given)."""
        return next((k for k in ("log_uniform", "uniform", "int_", "choice") if getattr(self, k) is not None),
                    "none").rstrip("_")


def value_list(values: Any) -> list[Any]:
    """A swept key's values as a list ({choice: [...]} is a list; a range has none)."""
    return values if isinstance(values, list) else list(values.choice or [])


def samplable(values: list[Any]) -> bool:
    """Whether the search engine can sample these values: numbers, text, booleans or null (not lists or
    mappings, which only a grid or zip can sweep)."""
    return all(v is None or isinstance(v, bool | int | float | str) for v in values)


SweepValues = Annotated[
    Annotated[list[Any], Tag("list")] | Annotated[Distribution, Tag("range")],
    Discriminator(lambda value: "list" if isinstance(value, list) else "range"),
]


class PruneConfig(Section):
    """Early stopping of hopeless trials: each trial reports sweep.metric after every epoch (with
    sweep.objectives, asha keeps the best 1/reduction by Pareto front rank at each rung)."""

    method: Literal["none", "asha", "median"] = Field(default="none", description="none: every trial runs all its "
                                                      "epochs; asha: asynchronous successive halving (Optuna's "
                                                      "SuccessiveHalvingPruner); median: stop a trial worse than "
                                                      "the median of earlier trials at the same epoch.")
    min_epochs: PosInt = Field(default=1, description="Epochs every trial runs before it can be pruned (must "
                               "be below train.epochs).")
    reduction: Int = Field(default=3, ge=2, description="asha: keep the best 1/reduction of the trials at each "
                           "rung (epochs min_epochs, min_epochs*reduction, ...).")


class RefineConfig(Section):
    """Coarse-to-fine: after the coarse round, sample around the best point found so far."""

    rounds: PosInt = Field(default=1, description="Refinement rounds after the coarse round.")
    trials: PosInt = Field(default=8, description="Trials per refinement round, sampled log-uniformly (uniformly "
                           "for ranges touching 0) one step on each side of the best point, per numeric key.")


OBJECTIVE_EXTRAS = ("params", "epoch_seconds", "predict_ms")
"""Objectives besides the epoch metrics: the model's total parameter count, the mean seconds of an epoch
(metrics.csv), the milliseconds to predict one batch of 32 (the run's summary); none is measured every
epoch except epoch_seconds."""


class Objective(Section):
    """One objective of a multi-objective sweep: a metric and whether to maximise or minimise it."""

    metric: str = Field(description="A metric training records every epoch (val_accuracy, val_loss, loss, "
                        "...; best_val_accuracy), or params (total parameter count), epoch_seconds (mean "
                        "seconds per epoch) or predict_ms (milliseconds to predict one batch of 32).")
    goal: Literal["max", "min"] = Field(description="max or min (required: say which way is better).")


class PickRule(Section):
    """How best.yaml picks one point of the Pareto front."""

    rule: Literal["best", "within"] = Field(default="best", description="best: the front point best on "
                                            "`objective`; within: of the front points within `tolerance` of "
                                            "the best value of `objective`, the one best on `then`.")
    objective: str | None = Field(default=None, description="The objective (its metric) picked on (default: "
                                  "the first of sweep.objectives).")
    tolerance: Float = Field(default=0.0, ge=0, description="within: how far from the best value of "
                             "`objective` a point may be (in its units, e.g. 0.01 of accuracy).")
    then: str | None = Field(default=None, description="within: the objective that decides among the points "
                             "within tolerance (required there), e.g. params: the smallest model.")


class SweepConfig(Section):
    """The parameter space of `dlrun sweep`, how it is searched, and how trials are ranked."""

    mode: Literal["grid", "zip"] = Field(default="grid", description="grid: every combination; zip: pairwise, "
                                         "as the course's zip(lr, lam) loop (sweep.search replaces it).")
    search: Literal["grid", "zip", "random", "tpe", "nsga2"] | None = Field(
        default=None, description="grid | zip (as sweep.mode) | random | tpe (Bayesian: Optuna's TPE sampler, "
        "also with sweep.objectives) | nsga2 (Optuna's NSGA-II, for sweep.objectives); random, tpe and nsga2 "
        "sample sweep.trials points (default: sweep.mode).")
    params: dict[str, SweepValues] = Field(default_factory=dict, description="Dotted config key -> the values "
                                           "to try, e.g. optimizer.lr: [0.001, 0.01]; for random/tpe also a "
                                           "range: {log_uniform: [1e-5, 10]}, {uniform: [a, b]}, {int: [a, b]} "
                                           "or {choice: [...]}.")
    trials: PosInt | None = Field(default=None, description="random / tpe: how many trials to sample (required "
                                  "there).")
    seed: Seed | None = Field(default=None, description="The sampler's seed (default: the "
                             "config's seed): the same seed samples the same trials.")
    prune: PruneConfig = Field(default_factory=PruneConfig, description="Stop hopeless trials early (default: "
                               "none).")
    refine: RefineConfig | None = Field(default=None, description="Coarse-to-fine rounds after the first "
                                        "(default: none; `dlrun sweep --refine`: one round of 8).")
    metric: str | None = Field(default=None, description="The summary metric that ranks trials: a validation "
                               "or training metric, never test_* (default: val_accuracy; regression: val_loss).")
    goal: Literal["max", "min"] | None = Field(default=None, description="max or min (default: the metric's "
                                               "direction: min for a loss, max otherwise).")
    objectives: list[Objective] | None = Field(default=None, min_length=2, description="Several objectives "
                                                  "at once, e.g. [{metric: val_accuracy, goal: max}, {metric: "
                                                  "params, goal: min}]: trials are ranked by Pareto front "
                                                  "(pareto.csv, pareto.png, pareto/), best.yaml is picked by "
                                                  "sweep.pick. Replaces sweep.metric and sweep.goal (which "
                                                  "then follow the first epoch-metric objective).")
    pick: PickRule = Field(default_factory=PickRule, description="With sweep.objectives: the front point "
                           "best.yaml holds, e.g. {rule: within, objective: val_accuracy, tolerance: 0.01, "
                           "then: params}: the smallest model within 0.01 of the best accuracy (default: "
                           "the best of the first objective).")
    score: Literal["last", "best"] = Field(default="last", description="What a trial scores, from its epoch rows "
                                           "(metrics.csv): last: the metric of its last epoch (of the kept epoch "
                                           "under restore_best_weights); best: its best epoch's. The pruner judges "
                                           "the same value while it runs (each epoch's, or the best so far).")
    repeats: PosInt = Field(default=1, description="Seeds per point: each point trains with seeds seed, seed+1, "
                            "..., seed+repeats-1, and points are ranked on the mean of their seeds' scores "
                            "(mean ± std in the leaderboard, results.csv and heat map).")
    max_failures: Int = Field(default=3, ge=0, description="Stop the sweep (exit 1) after this many failed trials "
                              "in a row (0: never); diverged trials are results and do not count.")
    backend: BackendConfig = Field(default_factory=BackendConfig, description="Where the trials run: "
                                   "{name: local} or {name: ray, address: auto, cpus_per_trial: 1} (see Scaling out).")

    @field_validator("params")
    @classmethod
    def _non_empty_lists(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, values in value.items():
            if isinstance(values, list) and not values:
                raise ValueError(f"sweep.params.{key} is an empty list; give at least one value")
        return value

    @property
    def method(self) -> str:
        """How the space is searched: sweep.search, else sweep.mode."""
        return self.search or self.mode
