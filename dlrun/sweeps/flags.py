"""The sweep flags (`--lr 0.1,1`, `--lr 1e-5:10`, `--lambda`, `--mode`, `--search`, `--trials`,
`--refine`) merged into a config's `sweep:` section, each remembered as the origin of what it set."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from dlrun.config import SourceMap
from dlrun.config.safe_yaml import load_value
from dlrun.errors import ConfigError, Problem

SHORTHANDS = {"lr": "optimizer.lr", "lambda": "model.l2"}


@dataclass
class SweepSourceMap(SourceMap):
    """A SourceMap that also knows which keys came from sweep flags (`--lr 0.1,1`), and which config
    keys of a trial were set from which `sweep.params` item, so a bad swept value points at that item."""

    flags: dict[str, str] = field(default_factory=dict)
    swept: dict[str, str] = field(default_factory=dict)

    def locate(self, key: str) -> str:
        """A swept config key stands for the `sweep.params` list item its value came from."""
        for config_key, item in self.swept.items():
            if key == config_key or key.startswith(config_key + "."):
                return item
        return key

    def origin_at(self, dotted: str) -> str | None:
        """A sweep flag (`--lr 0.1,1`) first, then `--set` and the file's lines."""
        return self.flags.get(dotted) or super().origin_at(dotted)


def parse_values(flag: str, text: str) -> list[Any] | dict[str, list[float]]:
    """`1e-4,0.01,1` -> [0.0001, 0.01, 1]: comma-separated YAML values (numbers like 1e-4 included);
    `1e-5:10` -> {log_uniform: [1e-05, 10.0]}, a range for search random or tpe."""
    if ":" in text and "," not in text:
        try:
            low, high = (float(part) for part in text.split(":"))
        except ValueError:
            raise ConfigError([Problem(f"--{flag} {text}", "", "expected a range LOW:HIGH of two numbers, e.g. "
                                       f"--{flag} 1e-5:10 (log-uniform, for --search random or tpe)")]) from None
        return {"log_uniform": [low, high]}
    values: list[Any] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise ConfigError([Problem(f"--{flag} {text}", "", "empty value; expected comma-separated "
                                       "values, e.g. --lr 0.001,0.01,0.1")])
        try:
            value = load_value(item)
        except yaml.YAMLError:
            value = item
        values.append(value)
    return values


def merge_flags(data: dict[str, Any], source: SweepSourceMap, flags: dict[str, str | None],
                settings: dict[str, Any]) -> None:
    """Put the sweep flags into the config mapping `data` and note where each came from in `source`."""
    sweep = data.get("sweep")
    sweep = dict(sweep) if isinstance(sweep, dict) else {}
    params = dict(sweep.get("params") or {}) if isinstance(sweep.get("params"), dict) else {}
    given = []
    for flag, text in flags.items():
        if text is None:
            continue
        key = SHORTHANDS[flag]
        params[key] = parse_values(flag, text)
        where = f"sweep.params.{key}"
        source.flags[where] = f"--{flag} {text}"
        for stale in [k for k in source.lines if k == where or k.startswith(where + ".")]:
            del source.lines[stale]  # the file's list was replaced by the flag
        given.append(f"--{flag} {text}")
    if given:
        sweep["params"] = params
        if len(given) == len(params):
            source.flags["sweep.params"] = " ".join(given)
    for key, value in settings.items():  # --mode, --search, --trials, --refine, --repeats
        if value is None or value is False:
            continue
        if key == "refine":
            sweep.setdefault("refine", {})
            source.flags["sweep.refine"] = "--refine"
            continue
        sweep[key] = value
        source.flags[f"sweep.{key}"] = f"--{key} {value}"
    if sweep:
        data["sweep"] = sweep
