"""Where each value of a config came from (a YAML line, a `--set` override), and the validated
config together with that map, so every problem can name its file and line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dlrun.config.schema import ExperimentConfig
from dlrun.errors import ConfigError, Problem


@dataclass
class SourceMap:
    """Where each dotted key came from: a line of the YAML file, or a `--set` override."""

    file: str = "<config>"
    lines: dict[str, int] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)

    def origin(self, key: str) -> str:
        """`FILE:LINE` (or `--set K=V`) for `key`, falling back to its nearest parent, then the file."""
        parts = self.locate(key).split(".") if key else []
        while parts:
            found = self.origin_at(".".join(parts))
            if found is not None:
                return found
            parts.pop()
        return self.file

    def locate(self, key: str) -> str:
        """The key whose origin stands for `key` (itself; a sweep maps swept keys to their list item)."""
        return key

    def origin_at(self, dotted: str) -> str | None:
        """The origin recorded for exactly `dotted`, or None."""
        if dotted in self.overrides:
            return f"--set {self.overrides[dotted]}"
        inside = [item for k, item in self.overrides.items() if k.startswith(f"{dotted}.")]
        if inside:  # an override below this key changed its shape (e.g. --set name.x=1)
            return f"--set {inside[0]}"
        if dotted in self.lines:
            return f"{self.file}:{self.lines[dotted]}"
        return None

    def problem(self, key: str, message: str) -> Problem:
        """A Problem located at `key`."""
        return Problem(self.origin(key), key, message)


@dataclass
class LoadedConfig:
    """A validated config with the map back to where each value was written."""

    config: ExperimentConfig
    source: SourceMap
    path: Path | None = None

    def error(self, key: str, message: str) -> ConfigError:
        """A ConfigError for one problem at `key`, located in the file or the override."""
        return ConfigError([self.source.problem(key, message)])
