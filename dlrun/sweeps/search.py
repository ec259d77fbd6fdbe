"""The search engine of a sweep: an Optuna study, driven by ask-and-tell from the sweep process. It
samples the trials of `search: random | tpe` and of refinement rounds, and its pruner judges every
trial's per-epoch report (`sweep.prune`). dlrun's executors still run each trial as a full run
directory; the study lives in the sweep directory (Optuna's journal file storage), so `--resume`
continues it and `optuna-dashboard SWEEP/study.journal` shows it.

Imported only by a sweep that searches or prunes (Optuna is not loaded for `--help` or `validate`).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from dlrun.config.sweep_checks import numeric_keys
from dlrun.config.sweep_schema import Distribution, SweepConfig, samplable, value_list
from dlrun.store import names
from dlrun.sweeps import journal
from dlrun.sweeps.plan import SweepPlan, Trial

TRIAL_ATTR, VALUES_ATTR = "dlrun_trial", "dlrun_values"  # user attributes: the trial id, values outside the space
MEDIAN_STARTUP_TRIALS = 3  # the median pruner waits for this many trials before it prunes


def study_name(round_: int) -> str:
    """The study of round `round_` (0: the grid, zip or sampled round)."""
    return names.SWEEP_STUDY_NAME if round_ == 0 else f"{names.SWEEP_STUDY_NAME}-refine-{round_}"


def distribution(values: Any) -> BaseDistribution | None:
    """Optuna's distribution for one swept key: a list or {choice} is categorical (None when its values
    are not plain numbers, text or booleans: such a key is kept in the trial's config only)."""
    if isinstance(values, Distribution) and values.choice is None:
        if values.log_uniform is not None:
            return FloatDistribution(*values.log_uniform, log=True)
        if values.uniform is not None:
            return FloatDistribution(*values.uniform)
        assert values.int_ is not None
        return IntDistribution(*values.int_)
    choices = value_list(values)
    if not samplable(choices):
        return None
    return CategoricalDistribution(choices)


def neighbourhood(plan: SweepPlan, best: Trial, tried: list[Trial]) -> tuple[dict[str, BaseDistribution],
                                                                            dict[str, Any]]:
    """Each numeric key: from the nearest value tried below the best point to the nearest tried above it
    (one grid step each side), log-uniform when the range stays above 0; other keys stay at the best.
    (Each round is its own study, so a key may be a list in the first round and a range here.)"""
    sweep = plan.base.config.sweep
    assert sweep is not None
    out: dict[str, BaseDistribution] = {}
    fixed: dict[str, Any] = {}
    numeric = numeric_keys(sweep)
    for key in plan.keys:
        value = best.params[key]
        seen = sorted({t.params[key] for t in tried if isinstance(t.params[key], int | float)})
        if key not in numeric or not isinstance(value, int | float) or len(seen) < 2:
            fixed[key] = value
            continue
        low = max([v for v in seen if v < value], default=value)
        high = min([v for v in seen if v > value], default=value)
        if isinstance(value, int) and all(isinstance(v, int) for v in seen):
            out[key] = IntDistribution(int(low), int(high), log=low > 0)
        else:
            out[key] = FloatDistribution(float(low), float(high), log=low > 0)
    return out, fixed


def tpe_startup(trials: int) -> int:
    """How many of a tpe sweep's `trials` are Sobol' points before TPE models the rest: the largest power
    of two up to half the budget (a Sobol' sequence is balanced at powers of two), 4 to 16."""
    return min(16, max(4, 1 << (max(1, trials // 2).bit_length() - 1)))


class SobolStart(optuna.samplers.QMCSampler):
    """Optuna's scrambled Sobol' sampler (seeded by the sweep, so a resumed sweep continues the sequence: the
    study records how far it went), told the search space up front: QMCSampler infers the space from the
    study's first trial, so on its own it would sample that one at random."""

    def __init__(self, space: dict[str, BaseDistribution], seed: int):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(qmc_type="sobol", scramble=True, seed=seed)
        self._space = dict(space)

    def infer_relative_search_space(self, study: optuna.Study, trial: optuna.trial.FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        return dict(self._space)


class Search:
    """The sweep's Optuna study: asks for trials, judges epoch reports, is told every outcome."""

    def __init__(self, plan: SweepPlan, root: Path):
        sweep = plan.base.config.sweep
        assert sweep is not None
        self.plan, self.sweep = plan, sweep
        self.seed = plan.seed
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        path = root / names.SWEEP_STUDY
        # several objectives: one direction each (Optuna's pruners judge one value: the sweep prunes, pareto.py)
        goals = [goal for _, goal in plan.objectives] or [plan.goal]
        directions = ["maximize" if goal == "max" else "minimize" for goal in goals]
        pruner = _pruner(sweep) if not plan.objectives else optuna.pruners.NopPruner()
        try:  # Optuna replays the journal here: a record it cannot apply is the journal's damage, named
            storage = JournalStorage(JournalFileBackend(str(path)))
            # one study per round (the first: "dlrun"; refinements "dlrun-refine-1", ...), in one journal file
            self.studies = [optuna.create_study(storage=storage, study_name=study_name(r), load_if_exists=True,
                                                directions=directions, pruner=pruner)
                            for r in range(plan.rounds)]
            self.ids: dict[str, int] = {}  # dlrun trial id -> its study trial's id
            self.rounds: dict[str, int] = {}
            self.params: dict[str, dict[str, Any]] = {}
            for round_, study in enumerate(self.studies):
                for frozen in study.get_trials(deepcopy=False):
                    name = frozen.user_attrs.get(TRIAL_ATTR)
                    if name is not None:
                        self.ids[str(name)], self.rounds[str(name)] = frozen._trial_id, round_
                        self.params[str(name)] = {**frozen.user_attrs.get(VALUES_ATTR, {}), **frozen.params}
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, AssertionError) as exc:
            raise journal.damaged(path, "", f"Optuna cannot replay it ({type(exc).__name__}: {exc})") from None

    def asked(self, round_: int) -> list[str]:
        """The ids of the trials asked so far in round `round_`, in order."""
        return sorted(name for name, r in self.rounds.items() if r == round_)

    def ask(self, trial_id: str, round_: int, space: dict[str, BaseDistribution],
            fixed: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new trial's values: `fixed` alone (a grid point), or sampled from `space` (round 0: the configured
        sampler; a refinement round: uniformly in `space`, log-uniformly where the range allows) with the
        `fixed` values of the keys outside it."""
        study = self.studies[round_]
        if fixed is not None and not space:  # a grid or zip point: its values enqueued, from the lists
            space = {k: d for k, d in ((k, distribution(v)) for k, v in self.sweep.params.items()) if d is not None}
            study.enqueue_trial({k: v for k, v in fixed.items() if k in space})
        space = {k: d for k, d in space.items() if d is not None}
        study.sampler = self._sampler(round_, space)
        trial = study.ask(space)
        values = {**(fixed or {}), **trial.params}
        trial.set_user_attr(TRIAL_ATTR, trial_id)
        trial.set_user_attr(VALUES_ATTR, {k: v for k, v in values.items() if k not in trial.params})
        self.ids[trial_id], self.rounds[trial_id], self.params[trial_id] = trial._trial_id, round_, values
        return values

    def _trial(self, trial_id: str) -> optuna.Trial:
        return optuna.Trial(self.studies[self.rounds[trial_id]], self.ids[trial_id])

    def _sampler(self, round_: int, space: dict[str, BaseDistribution]) -> optuna.samplers.BaseSampler:
        # seeded by how many trials the study holds, so a resumed sweep does not sample its first points again
        seed = self.seed * 1000 + len(self.ids) + 100_000 * round_
        if round_ == 0 and self.sweep.method == "tpe":
            if len(self.asked(0)) < tpe_startup(self.sweep.trials or 0):
                return SobolStart(space, seed=self.seed)
            # the keys modelled jointly (lr and lambda interact); while trials run in parallel, TPE assumes the
            # running ones' outcome (constant liar) instead of sampling next to them
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.samplers.TPESampler(seed=seed, n_startup_trials=0, multivariate=True,
                                                  constant_liar=True)
        if round_ == 0 and self.sweep.method == "nsga2":
            # generations of a quarter of the budget (4 to 50 points): with the default 50, a small budget
            # would never leave the random first generation
            population = max(4, min(50, (self.sweep.trials or 0) // 4))
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
        return optuna.samplers.RandomSampler(seed=seed)

    def report(self, trial_id: str, epoch: int, value: Any) -> bool:
        """Record a trial's metric after `epoch`; True when the pruner says stop it. A trial resumed
        after an interruption reports on to the same study trial, judged by the same pruner state."""
        if trial_id not in self.ids or not isinstance(value, int | float):
            return False
        trial = self._trial(trial_id)
        if epoch not in trial._cached_frozen_trial.intermediate_values:
            trial.report(float(value), epoch)
        return trial.should_prune()

    def tell(self, trial_id: str, status: str, value: float | list[float | None] | None) -> None:
        """Tell the study how a trial ended: its value, or with several objectives the list of its values
        (interrupted trials stay open: they resume). A diverged trial of one objective is told as pruned:
        TPE leaves failed trials out of its model (and out of its start-up count), so it would sample the
        diverging corner again; as a pruned trial it ranks below every trial that measured its value (by its
        last epoch reported, or last of all when none was). A failed trial (an error) stays failed."""
        if trial_id not in self.ids or status not in ("completed", "pruned", "diverged", "failed"):
            return
        values = value if isinstance(value, list) else [value]
        whole = all(v is not None and math.isfinite(v) for v in values)
        one = not isinstance(value, list)  # Optuna ranks pruned trials by one direction only
        state = TrialState.COMPLETE if status == "completed" and whole else (
            TrialState.PRUNED if status == "pruned" or (status == "diverged" and one) else TrialState.FAIL)
        trial = self._trial(trial_id)
        trial.study.tell(trial, value if state == TrialState.COMPLETE else None, state=state, skip_if_finished=True)


def _pruner(sweep: SweepConfig) -> optuna.pruners.BasePruner:
    prune = sweep.prune
    if prune.method == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=prune.min_epochs,
                                                      reduction_factor=prune.reduction)
    if prune.method == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=prune.min_epochs)
    return optuna.pruners.NopPruner()
