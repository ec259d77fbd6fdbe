"""A sweep in TensorBoard's HParams dashboard: the experiment (every swept key with its values; the
ranking metric and the validation loss) in SWEEP/tb and each trial's values in its RUN/tb when the
sweep starts, each trial's status when it ends. The trials write their own curves as they train.
The records are written by dlrun.engine.hparams, without TensorFlow."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from dlrun.store import names
from dlrun.sweeps.plan import SweepPlan, Trial
from dlrun.ui.console import Reporter


def sweep_started(plan: SweepPlan, root: Path, reporter: Reporter) -> None:
    """Write the experiment and every trial's values (those already written stay, on resume)."""
    from dlrun.engine import hparams

    if plan.base.config.train.tensorboard_settings() is None:
        return
    domains = _domains(plan)
    types = hparams.kinds(domains)
    try:
        hparams.write_experiment(root / names.TENSORBOARD, domains, [plan.metric, "val_loss"])
        for trial in plan.trials:  # those started (resumed); the others' as they start (trial_added)
            if (root / names.SWEEP_TRIALS / trial.id / names.CONFIG).is_file():  # written as a trial starts
                folder = root / names.SWEEP_TRIALS / trial.id / names.TENSORBOARD
                hparams.write_trial(folder, trial.params, types, f"{root.name}/{trial.id}")
    except OSError as exc:
        reporter.warn(f"TensorBoard HParams records not written ({exc}); the sweep runs without them")


def _configured(plan: SweepPlan) -> dict[str, list[Any]]:
    """Each swept key's configured values: its list, or a range's ends (sampled trials fall between them,
    with the same type)."""
    sweep = plan.base.config.sweep
    assert sweep is not None
    return {key: values if isinstance(values, list) else
            list(values.choice or values.log_uniform or values.uniform or values.int_ or [])
            for key, values in sweep.params.items()}


def _domains(plan: SweepPlan) -> dict[str, list[Any]]:
    """Each swept key's values: the trials' so far, then the configured ones."""
    return {key: list(dict.fromkeys([*plan.values(key), *values])) for key, values in _configured(plan).items()}


def trial_added(plan: SweepPlan, root: Path, trial: Trial) -> None:
    """Write the values of a trial as it starts (a grid point) or as the search engine asks for it."""
    from dlrun.engine import hparams

    if plan.base.config.train.tensorboard_settings() is None:
        return
    folder = root / names.SWEEP_TRIALS / trial.id / names.TENSORBOARD
    with contextlib.suppress(OSError):
        hparams.write_trial(folder, trial.params, hparams.kinds(_configured(plan)), f"{root.name}/{trial.id}")


def trial_ended(root: Path, trial_id: str, status: str) -> None:
    """Record a trial's end (success, or failure for diverged and failed trials) for the dashboard."""
    from dlrun.engine import hparams

    folder = root / names.SWEEP_TRIALS / trial_id / names.TENSORBOARD
    if folder.is_dir():  # the sweep writes TensorBoard records
        with contextlib.suppress(OSError):  # else only the dashboard's status column misses it
            hparams.write_trial_end(folder, status)
