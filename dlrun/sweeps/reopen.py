"""Reopening a sweep directory for `--resume`: its plan from sweep.yaml, its search history from the
Optuna journal (checked and mended first), and the trials that started checked against their configs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dlrun.config import config_sha256, load_config
from dlrun.errors import ConfigError, Problem, SweepError
from dlrun.store import names
from dlrun.store.rundir import check_path
from dlrun.sweeps import journal
from dlrun.sweeps.plan import SweepPlan, plan_sweep
from dlrun.sweeps.rounds import add_asked_trials
from dlrun.ui.console import Reporter

if TYPE_CHECKING:
    from dlrun.sweeps.search import Search


def sweep_root(resume: str | Path) -> Path:
    """The sweep directory `--resume` names, checked: it exists and holds a sweep.yaml."""
    root = check_path(resume, "--resume")
    if not (root / names.SWEEP_SPEC).is_file():
        raise SweepError(f"{root}: not a sweep directory (no {names.SWEEP_SPEC}); expected one written by "
                         "`dlrun sweep`")
    return root


def reopen(root: Path, reporter: Reporter) -> tuple[SweepPlan, Search | None]:
    """The plan and search engine of the sweep at `root`, from its sweep.yaml and journal, every trial that
    started checked against its directory's config. Raises ConfigError, SweepError."""
    spec = root / names.SWEEP_SPEC
    try:
        plan = plan_sweep(spec)
    except ConfigError as exc:  # a damaged or edited sweep.yaml: say what it is and what to do
        hint = Problem(str(spec), "", f"this is the sweep's own record of its space; it is damaged or was edited. "
                       f"Restore it (each trial keeps its config in {names.SWEEP_TRIALS}/NNN/{names.CONFIG}), "
                       "or start a new sweep")
        raise ConfigError([*exc.problems, hint]) from None
    search = open_search(plan, root, reporter)
    grid = {t.id for t in plan.trials}  # the others' values come from the journal
    if search is not None:
        _check_journal_trials(plan, search, root)
        try:
            add_asked_trials(plan, search)
        except ConfigError as exc:  # values the sampler never gave: the journal was edited
            raise journal.damaged(root / names.SWEEP_STUDY, "", "a trial's values do not make a valid config "
                                  f"({exc.problems[0].key}: {exc.problems[0].message})") from None
    for trial in plan.trials:  # those that started; the others get their directory when they start
        path = root / names.SWEEP_TRIALS / trial.id
        if (path / names.CONFIG).is_file() and \
                config_sha256(load_config(path / names.CONFIG).config) != config_sha256(trial.config.config):
            record = spec if trial.id in grid else root / names.SWEEP_STUDY
            raise SweepError(f"{path / names.CONFIG} no longer matches trial {trial.id} of {record}; a "
                             "resumed sweep keeps its trials' configs. Restore the one that was edited, or start "
                             "a new sweep.")
    return plan, search


def open_search(plan: SweepPlan, root: Path, reporter: Reporter | None = None) -> Search | None:
    """The sweep's search engine (an Optuna study in the sweep directory) when it samples or prunes; a
    resumed one's journal checked first (a torn last line dropped, with a warning: see sweeps/journal.py)."""
    if not plan.sampled:
        return None
    from dlrun.sweeps.search import Search

    if reporter is not None and (note := journal.recover(root / names.SWEEP_STUDY)):
        reporter.warn(note)
    return Search(plan, root)


def _check_journal_trials(plan: SweepPlan, search: Search, root: Path) -> None:
    """The journal's trial names are trial directories' names; and it knows every trial directory (else its
    history was cut short: those trials would be asked for again, with other values, into the same folders)."""
    path = root / names.SWEEP_STUDY
    if bad := sorted(n for n in search.ids if not n.isdigit() or len(n) > 9):
        raise journal.damaged(path, "", f"trial name {bad[0]!r} is not a trial number")
    lost = journal.unknown_trials(root, {t.id for t in plan.trials} | set(search.ids))
    if lost:
        raise SweepError(f"{path}: the journal does not know trial(s) {', '.join(lost)} of {root / names.SWEEP_TRIALS}"
                         " (its history was cut short or edited). Restore the journal, or move those trial "
                         "directories out of the sweep to go on searching from the history it holds")
