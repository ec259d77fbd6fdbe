"""`dlrun validate`: parse and check a config without loading TensorFlow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlrun.config import config_sha256, load_config


def validate(config: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Check a config file as `dlrun train` would before training, without loading TensorFlow.

    Args:
        config: The YAML file.
        overrides: `KEY=VALUE` strings applied after the file.

    Returns:
        {valid, config, name, config_sha256, layers, source}.

    Raises:
        ConfigError: listing every problem, each as `FILE:LINE: key: message`.
    """
    lc = load_config(config, overrides)
    return {"valid": True, "config": str(config), "name": lc.config.name, "config_sha256": config_sha256(lc.config),
            "layers": len(lc.config.model.layers), "source": lc.config.data.source}
