"""Sweep planning: the parameter space (config `sweep:` plus CLI flags) expanded into trials, each a
validated config. No TensorFlow here, so a bad sweep fails fast before anything starts.

Flags override the file: `--lr` and `--lambda` are shorthands for `optimizer.lr` and `model.l2`,
`--mode` replaces `sweep.mode`. Every problem is located (`FILE:LINE`, `--set K=V` or `--lr ...`).
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dlrun.config import LoadedConfig, SourceMap, checks
from dlrun.config.keys import get_dotted, set_dotted
from dlrun.config.loader import apply_overrides, check_text, dump_config, read_config_file, validate_data
from dlrun.config.safe_yaml import load_value
from dlrun.errors import ConfigError, Problem
from dlrun.metrics import direction, needs_validation, rankable_metrics, selection_problem

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


@dataclass(frozen=True)
class Trial:
    """One point of the space: its id (000, 001, ...), swept values (as validated) and full config."""

    id: str
    params: dict[str, Any]
    config: LoadedConfig

    @property
    def seed(self) -> int:
        """The trial's seed (the base seed unless `seed` itself is swept): results never depend on order."""
        return self.config.config.seed


@dataclass(frozen=True)
class SweepPlan:
    """The resolved base config (its `sweep:` section is the final space) and the trials."""

    base: LoadedConfig
    trials: list[Trial]

    @property
    def keys(self) -> list[str]:
        """The swept dotted keys, in order."""
        assert self.base.config.sweep is not None
        return list(self.base.config.sweep.params)

    @property
    def mode(self) -> str:
        assert self.base.config.sweep is not None
        return self.base.config.sweep.mode

    @property
    def metric(self) -> str:
        assert self.base.config.sweep is not None
        return self.base.config.sweep.metric

    @property
    def goal(self) -> str:
        assert self.base.config.sweep is not None
        return self.base.config.sweep.goal

    def values(self, key: str) -> list[Any]:
        """The distinct validated values of `key`, in the order of the space."""
        seen: list[Any] = []
        for trial in self.trials:
            if trial.params[key] not in seen:
                seen.append(trial.params[key])
        return seen

    def spec_yaml(self) -> str:
        """sweep.yaml: the resolved base config with its parameter space; `dlrun sweep` runs it again."""
        head = (f"# dlrun sweep: {len(self.trials)} trials ({self.mode} over {', '.join(self.keys)}).\n"
                "# The resolved base config and the parameter space; resume with dlrun sweep --resume DIR.\n")
        return head + dump_config(self.base.config)


def parse_values(flag: str, text: str) -> list[Any]:
    """`1e-4,0.01,1` -> [0.0001, 0.01, 1]: comma-separated YAML values (numbers like 1e-4 included)."""
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
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)  # YAML 1.1 reads 1e-4 as text
        values.append(value)
    return values


def _merge_flags(data: dict[str, Any], source: SweepSourceMap, flags: dict[str, str | None],
                 mode: str | None) -> None:
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
    if mode is not None:
        sweep["mode"] = mode
        source.flags["sweep.mode"] = f"--mode {mode}"
    if sweep:
        data["sweep"] = sweep


def load_sweep_config(path: str | Path, overrides: list[str] | None = None, lr: str | None = None,
                      lam: str | None = None, mode: str | None = None) -> LoadedConfig:
    """The base config with the final parameter space in its `sweep:` section, validated and checked."""
    data, plain = read_config_file(path)
    source = SweepSourceMap(file=plain.file, lines=plain.lines)
    data = apply_overrides(data, list(overrides or []), source)
    _merge_flags(data, source, {"lr": lr, "lambda": lam}, mode)
    check_text(data, source)
    base = LoadedConfig(validate_data(data, source), source, Path(path))
    checks.run_static_checks(base)
    _resolve_ranking(base)
    problems = check_space(base)
    if problems:
        raise ConfigError(problems)
    return base


def _resolve_ranking(base: LoadedConfig) -> None:
    """Fill in what ranks trials when the config leaves it out: val_accuracy (classification) or
    val_loss (regression); the goal from the metric's direction."""
    sweep = base.config.sweep
    if sweep is None:
        return
    if "metric" not in sweep.model_fields_set and base.config.task == "regression":
        sweep.metric = "val_loss"
    if "goal" not in sweep.model_fields_set and sweep.metric in rankable_metrics(base.config.task):
        sweep.goal = direction(sweep.metric)


def check_space(base: LoadedConfig) -> list[Problem]:
    """The space must be non-empty and rank by a validation or training metric that training records;
    train.threads is fixed per process, so it cannot vary between trials."""
    sweep, where = base.config.sweep, base.source
    if sweep is None or not sweep.params:
        return [where.problem("sweep.params", "nothing to sweep: give --lr/--lambda, or sweep.params in the "
                              "config (a dotted key and a list of values)")]
    if "train.threads" in sweep.params:
        return [where.problem("sweep.params.train.threads", "train.threads cannot be swept: TensorFlow fixes a "
                              "process's thread pools when it starts; set train.threads once for every trial")]
    allowed = rankable_metrics(base.config.task)
    reason = selection_problem(sweep.metric)
    if reason is None and sweep.metric not in allowed:
        reason = f"'{sweep.metric}' is not recorded; use one of {', '.join(allowed)}"
    if reason is None and needs_validation(sweep.metric) and base.config.data.validation == 0:
        reason = (f"'{sweep.metric}' needs a validation split but data.validation is 0; set data.validation "
                  "(e.g. 0.1), or rank on the training loss with sweep.metric: loss")
    return [where.problem("sweep.metric", reason)] if reason else []


def expand(mode: str, params: dict[str, list[Any]]) -> list[dict[str, int]]:
    """Indices into each value list, one mapping per trial: cartesian product (grid) or pairs (zip)."""
    keys = list(params)
    ranges = [range(len(params[k])) for k in keys]
    combos = itertools.product(*ranges) if mode == "grid" else zip(*ranges, strict=True)
    return [dict(zip(keys, combo, strict=True)) for combo in combos]


def _trial_config(base: LoadedConfig, trial_id: str, params: dict[str, list[Any]],
                  indices: dict[str, int]) -> LoadedConfig:
    """Base config dict (without `sweep:`) with the trial's values set, validated like a file."""
    assert isinstance(base.source, SweepSourceMap)
    data = base.config.to_dict()
    data["sweep"] = None
    source = SweepSourceMap(file=base.source.file, lines=base.source.lines, overrides=base.source.overrides,
                            flags=base.source.flags,
                            swept={k: f"sweep.params.{k}.{i}" for k, i in indices.items()})
    shown = ", ".join(f"{k}={params[k][i]!r}" for k, i in indices.items())
    try:
        for key, i in indices.items():
            set_dotted(data, key, params[key][i])
        loaded = LoadedConfig(validate_data(data, source), source, base.path)
        checks.run_static_checks(loaded)
    except ConfigError as exc:
        raise ConfigError([Problem(p.origin, p.key, f"{p.message} (trial {trial_id}: {shown})")
                           for p in exc.problems]) from None
    except (KeyError, IndexError, TypeError) as exc:
        raise base.error("sweep.params", f"trial {trial_id} ({shown}): {exc}") from None
    return loaded


def _check_distinct(base: LoadedConfig, trials: list[Trial], combos: list[dict[str, int]]) -> None:
    """Two trials with the same values would run the same training twice (e.g. 0.1 and 1e-1)."""
    seen: dict[str, tuple[Trial, dict[str, int]]] = {}
    for trial, indices in zip(trials, combos, strict=True):
        signature = repr(list(trial.params.values()))
        if signature in seen:
            first, first_indices = seen[signature]
            key = next((k for k in indices if indices[k] != first_indices[k]), None)
            shown = ", ".join(f"{k}={v!r}" for k, v in trial.params.items())
            raise ConfigError([base.source.problem(
                f"sweep.params.{key}.{indices[key]}" if key else "sweep.params",
                f"trials {first.id} and {trial.id} would be the same run ({shown}); remove the repeated "
                "value")])
        seen[signature] = (trial, indices)


def plan_sweep(path: str | Path, overrides: list[str] | None = None, lr: str | None = None,
               lam: str | None = None, mode: str | None = None) -> SweepPlan:
    """Load the config, build the space and expand it into validated trials. Raises ConfigError."""
    base = load_sweep_config(path, overrides, lr, lam, mode)
    assert base.config.sweep is not None
    params = base.config.sweep.params
    combos = expand(base.config.sweep.mode, params)
    width = max(3, len(str(len(combos) - 1)))
    trials = []
    for n, indices in enumerate(combos):
        trial_id = f"{n:0{width}d}"
        loaded = _trial_config(base, trial_id, params, indices)
        trials.append(Trial(trial_id, {k: get_dotted(loaded.config.to_dict(), k) for k in params}, loaded))
    _check_distinct(base, trials, combos)
    return SweepPlan(base, trials)

