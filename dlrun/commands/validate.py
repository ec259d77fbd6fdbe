"""`dlrun validate`: parse and check a config, and what can be read cheaply of its data, without
loading TensorFlow or decoding an image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlrun.config import config_sha256, load_config
from dlrun.config.checks import label_problems
from dlrun.data.peek import TRAIN_ONLY, peek_data
from dlrun.errors import ConfigError, DataError


def validate(config: str | Path, overrides: list[str] | None = None, data: bool = True) -> dict[str, Any]:
    """Check a config file as `dlrun train` would before training, without loading TensorFlow.

    Besides the config itself, the data path must exist and be of the kind its source reads, and a
    classification's label range (read from label files, headers and class folders; data/peek.py)
    must fit the output layer. What only loading every example shows is left to train (TRAIN_ONLY).

    Args:
        config: The YAML file.
        overrides: `KEY=VALUE` strings applied after the file.
        data: Also check the data path and labels (False: the config alone).

    Returns:
        {valid, config, name, config_sha256, layers, source, checked, train_only}.

    Raises:
        ConfigError: listing every problem, each as `FILE:LINE: key: message`; a data problem is
            located at data.path (or data.source when there is no path).
    """
    lc = load_config(config, overrides)
    checked: list[str] = []
    if data:
        key = "data.path" if lc.config.data.path else "data.source"
        try:
            peek = peek_data(lc.config.data, lc.config.task)
        except DataError as exc:
            raise lc.error(key, str(exc)) from None
        problems = label_problems(lc, peek.classes)
        if problems:
            raise ConfigError(problems)
        checked = peek.checked
    return {"valid": True, "config": str(config), "name": lc.config.name, "config_sha256": config_sha256(lc.config),
            "layers": len(lc.config.model.layers), "source": lc.config.data.source, "checked": checked,
            "train_only": list(TRAIN_ONLY)}
