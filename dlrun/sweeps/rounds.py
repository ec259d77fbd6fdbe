"""The trials of a sweep, handed to the executor lazily, round by round: the grid or zip points that
have not ended, or for `search: random | tpe` each new point asked of the search engine when a slot
is free (so TPE learns from every trial finished by then), then each refinement round sampled around
the best point so far. A trial is created (its directory and config.yaml) only when it is asked for, a
grid point when it starts: a grid of 10,000 points made 10,000 directories before its first trial.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlrun.config import dump_config
from dlrun.config.checks import check_against_data
from dlrun.config.sweep_checks import SAMPLED
from dlrun.data import Dataset
from dlrun.interrupts import StopRequest
from dlrun.store import files, names
from dlrun.store.rundir import create_run_dir
from dlrun.sweeps import board
from dlrun.sweeps.executors import TrialTask
from dlrun.sweeps.plan import SweepPlan, Trial, make_trial
from dlrun.sweeps.ranking import best_of

if TYPE_CHECKING:
    from dlrun.sweeps.search import Search
    from dlrun.sweeps.session import SweepSession


def write_trial(root: Path, trial: Trial) -> Path:
    """The trial's run directory with its config.yaml (kept when it exists)."""
    path = root / names.SWEEP_TRIALS / trial.id
    if not (path / names.CONFIG).is_file():
        create_run_dir(trial.id, explicit=path)
        files.write_text(path / names.CONFIG, dump_config(trial.config.config))
    return path


def add_asked_trials(plan: SweepPlan, search: Search) -> None:
    """Put the points the study asked for (sampled or refined), each with its seeds, into `plan`, in id
    order (a resumed sweep)."""
    known = set(plan.point_ids())
    for name in sorted(search.ids):
        if name not in known:
            plan.add_point(make_trial(plan.base, name, search.params[name], search.rounds[name]))
    plan.trials.sort(key=lambda t: (t.point_id, t.rep))


class TrialSource:
    """Makes each round's lazy task iterable for the executor."""

    def __init__(self, session: SweepSession, search: Search | None, datasets: dict[str, Dataset],
                 key_of: dict[str, str], stop: StopRequest):
        self.session, self.search, self.datasets, self.key_of, self.stop = session, search, datasets, key_of, stop
        self.plan, self.root = session.plan, session.root
        self.threads = self.plan.base.config.train.threads

    @property
    def rounds(self) -> int:
        """1 + the refinement rounds."""
        return self.plan.rounds

    def _task(self, trial: Trial) -> TrialTask:
        return TrialTask(trial.id, self.root / names.SWEEP_TRIALS / trial.id, self.key_of[trial.id], self.threads,
                         judged=self.session.prunes)

    def tasks(self, round_: int) -> Iterator[TrialTask]:
        """Round `round_`'s trials that have not ended, then (sampled rounds) new ones until it is full."""
        outcomes = self.session.outcomes
        for trial in self._order([t for t in self.plan.trials if t.round == round_]):
            if outcomes[trial.id].final:
                continue
            if self.search is not None and trial.point_id not in self.search.ids:  # a grid point: fixed values
                self.search.ask(trial.point_id, round_, {}, fixed=trial.params)
            if not (self.root / names.SWEEP_TRIALS / trial.id / names.CONFIG).is_file():  # starts now: its folder
                write_trial(self.root, trial)
                board.trial_added(self.plan, self.root, trial)
            yield self._task(trial)
        if self.search is None or (round_ == 0 and self.plan.mode not in SAMPLED):
            return
        found = self._space(round_)
        if found is None:
            return
        space, fixed = found
        sweep = self.plan.base.config.sweep
        assert sweep is not None
        target = sweep.trials if round_ == 0 else sweep.refine.trials  # type: ignore[union-attr]
        while len(self.search.asked(round_)) < (target or 0) and not self.stop.requested:
            point_id = f"{len(self.plan.point_ids()):0{self.plan.width}d}"
            point = make_trial(self.plan.base, point_id, self.search.ask(point_id, round_, space, fixed), round_)
            data = self.datasets[next(iter(self.datasets))]
            check_against_data(point.config, data.input_shape, data.num_classes, len(data.x_train))
            seeds = self.plan.add_point(point)
            for trial in seeds:  # every seed's directory first: the point's seeds may run at once
                write_trial(self.root, trial)
                self.key_of[trial.id] = next(iter(self.datasets))
                self.session.add(trial)
                board.trial_added(self.plan, self.root, trial)
            for trial in seeds:
                yield self._task(trial)

    def _order(self, trials: list[Trial]) -> list[Trial]:
        """A pruned grid or zip runs its points in a seeded shuffled order: in the order of the space, the
        pruner would meet the worst corner first (the smallest learning rates) and could prune nothing."""
        sweep = self.plan.base.config.sweep
        assert sweep is not None
        if self.plan.mode in SAMPLED or sweep.prune.method == "none":
            return trials
        points = list(dict.fromkeys(t.point_id for t in trials))  # a point's seeds stay together, in order
        random.Random(self.plan.seed).shuffle(points)
        place = {p: i for i, p in enumerate(points)}
        return sorted(trials, key=lambda t: (place[t.point_id], t.rep))

    def _space(self, round_: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Where round `round_` samples: (distributions, values fixed outside them)."""
        from dlrun.sweeps.search import distribution, neighbourhood

        if round_ == 0:
            params = self.plan.base.config.sweep.params  # type: ignore[union-attr]
            return {k: distribution(v) for k, v in params.items()}, {}
        earlier = [t for t in self.plan.trials if t.round < round_]
        best = best_of(self.session.entries([t.id for t in earlier]), self.plan.goal)
        if best is None:
            self.session.reporter.warn(f"refinement round {round_}: no trial completed, so there is no best point "
                                       "to refine around; skipped")
            return None
        return neighbourhood(self.plan, best.trial, earlier)

    def ready(self, round_: int) -> bool:
        """Round `round_` may start: every earlier trial ended (an interrupted one resumes first)."""
        return all(self.session.outcomes[t.id].final for t in self.plan.trials if t.round < round_)
