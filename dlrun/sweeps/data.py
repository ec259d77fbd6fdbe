"""The data sets of a sweep: each distinct data config loaded once (through the data cache) and checked
against every trial's model before anything trains."""

from __future__ import annotations

import hashlib
import json

from dlrun.config.checks import check_against_data
from dlrun.data import Dataset, cache, load_dataset
from dlrun.errors import ConfigError, Problem
from dlrun.sweeps.plan import SweepPlan, Trial
from dlrun.sweeps.report import format_value
from dlrun.ui.console import Reporter


def load_sweep_data(plan: SweepPlan, reporter: Reporter, use_cache: bool = True,
                    copies: int = 1) -> tuple[dict[str, Dataset], dict[str, str]]:
    """Load and preprocess each distinct data config once (one, unless data keys are swept; the seed
    plays no part in the data), through the data cache unless `use_cache` is False, and run the data
    checks of every trial. `copies`: the local worker processes that would each hold a data set kept in
    memory; a cached data set whose examples, times `copies`, exceed cache.map_threshold() is
    memory-mapped instead, and every worker maps the one file (processes.py). Returns (data sets by
    key, data key of each trial)."""
    map_over = cache.map_threshold() // copies if copies > 1 else None
    datasets: dict[str, Dataset] = {}
    key_of: dict[str, str] = {}
    # random and tpe have no trials yet: their data is the base config's (data keys are not sampled)
    for trial in plan.trials or [Trial("base", {}, plan.base)]:
        cfg = trial.config.config
        spec = json.dumps({"data": cfg.data.model_dump(mode="json"), "task": cfg.task}, sort_keys=True)
        key = hashlib.sha256(spec.encode()).hexdigest()[:16]
        if key not in datasets:
            with reporter.progress() as progress:
                datasets[key] = load_dataset(cfg.data, cfg.task, use_cache=use_cache, progress=progress,
                                             map_over=map_over)
            for note in [*datasets[key].notes, *filter(None, [datasets[key].validation_warning()])]:
                reporter.warn(note)
        data = datasets[key]
        try:
            check_against_data(trial.config, data.input_shape, data.num_classes, len(data.x_train))
        except ConfigError as exc:
            shown = ", ".join(f"{k}={format_value(v)}" for k, v in trial.params.items())
            raise ConfigError([Problem(p.origin, p.key, f"{p.message} (trial {trial.id}: {shown})")
                               for p in exc.problems]) from None
        key_of[trial.id] = key
    return datasets, key_of
