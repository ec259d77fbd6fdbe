"""The configs dlrun wrote during a test session (every run's config.yaml, every sweep's best.yaml) must
read back to the config that was written (issue 23): conftest checks them all when the session ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml

from dlrun.config import load_config
from dlrun.config.schema import ExperimentConfig
from dlrun.errors import ConfigError
from dlrun.store import names

# a config dlrun writes is resolved: it holds every top-level key (a hand-written one never does)
RESOLVED_KEYS = {info.alias or name for name, info in ExperimentConfig.model_fields.items()}
# yaml.safe_load's reading (the same resolvers and constructors) with libyaml's parser, ~8x faster: a session
# ends by reading every YAML file its tests left, hundreds per worker
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _safe_load(path: Path) -> object:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)  # noqa: S506 (a safe loader)


def written_configs(root: Path) -> Iterator[Path]:
    """The resolved configs under `root`: config.yaml and best.yaml files holding every top-level key."""
    for path in sorted([*root.rglob(names.CONFIG), *root.rglob(names.SWEEP_BEST)]):
        try:
            data = _safe_load(path)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # a test's deliberately broken file: dlrun never writes one
        if isinstance(data, dict) and set(data) >= RESOLVED_KEYS:
            yield path


def unreadable(path: Path) -> str | None:
    """Why the written config at `path` does not read back to itself, or None."""
    try:
        loaded = load_config(path)
    except ConfigError as error:
        return str(error)
    if loaded.config.to_dict() != _safe_load(path):
        return "reads back to a different config"
    return None


def unreadable_written_configs(root: Path) -> list[str]:
    """`PATH: why` for every config dlrun wrote under `root` that does not read back equal."""
    return [f"{path}: {why}" for path in written_configs(root) if (why := unreadable(path)) is not None]
