"""A trained model as `dlrun predict` and `dlrun export` open it: a run directory (its config,
inputs.json and final weights), or a weights file with the config it was trained from."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlrun.config import LoadedConfig, load_config
from dlrun.data import load_checked
from dlrun.data.classes import inputs_record
from dlrun.data.inputs import InputSpec
from dlrun.errors import WeightsError
from dlrun.store import files, names
from dlrun.store.rundir import find_run_dir, missing_target
from dlrun.weights import load_into, read_weights

Progress = Callable[[str, int, int], None]


@dataclass
class Saved:
    """A trained model's config, how its inputs are prepared, and where its weights are."""

    lc: LoadedConfig
    spec: InputSpec
    weights: Path


def target_config(target: Path, config: str | Path | None) -> tuple[Path, Path | None]:
    """(config path, the run directory or None) for a run directory (its own config unless `config`) or a
    weights file (`config` required: WeightsError without it). RunDirError for a folder that is no run;
    WeightsError naming the closest run directories for a path that does not exist."""
    if not os.path.lexists(target):
        raise WeightsError(missing_target(target))
    if target.is_dir():
        run = find_run_dir(target).path
        return (Path(config) if config else run / names.CONFIG), run
    if config is None:
        raise WeightsError(f"{target}: a bare weights file needs --config CONFIG for the architecture and data")
    return Path(config), None


def run_feature_stats(run: Path | None) -> dict[str, Any] | None:
    """A run's table statistics (names.FEATURES), so new rows are prepared as its training rows were."""
    path = run / names.FEATURES if run is not None else None
    return files.read_json(path) if path is not None and path.is_file() else None


def open_target(target: str | Path, config: str | Path | None = None, overrides: list[str] | None = None,
                use_cache: bool = True, progress: Progress | None = None) -> Saved:
    """The Saved model behind `target`: a run directory (its inputs.json says how inputs are prepared),
    or a weights file with `config` (then the config's data is loaded once to learn the input shape and
    the class names). The weights file is checked here, before TensorFlow loads.

    Raises RunDirError, WeightsError, ConfigError or DataError.
    """
    target = Path(target)
    config_path, run = target_config(target, config)
    lc = load_config(config_path, overrides)
    read_weights(target)  # a missing or damaged file fails here, before data and TensorFlow
    record = files.read_json(run / names.INPUTS) if run is not None and (run / names.INPUTS).exists() else None
    if record is None:  # a weights file, or a run from before inputs.json: the config's data tells
        data = load_checked(lc, use_cache, progress)
        record = {**inputs_record(lc.config.data, lc.config.task, data), "feature_stats": data.feature_stats}
    else:  # inputs.json has the class names; a table's encoding and scaling come from features.json
        record["feature_stats"] = run_feature_stats(run)
    return Saved(lc, InputSpec.from_record(record), target)


def build_saved_model(saved: Saved, progress: Progress | None = None) -> Any:
    """The model of `saved`, built from its config for its recorded input shape, with its weights."""
    from dlrun.engine.fit import seeded_model_for_shape

    model = seeded_model_for_shape(saved.lc, saved.spec.input_shape, distributed=False)
    load_into(model, saved.weights, progress)
    return model
