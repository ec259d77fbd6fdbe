"""Sweep planning: the parameter space (config `sweep:` plus CLI flags) expanded into trials, each a
validated config. No TensorFlow here, so a bad sweep fails fast before anything starts.

Flags override the file: `--lr` and `--lambda` are shorthands for `optimizer.lr` and `model.l2`,
`--mode` replaces `sweep.mode`. Every problem is located (`FILE:LINE`, `--set K=V` or `--lr ...`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlrun.config import LoadedConfig, checks
from dlrun.config.keys import get_dotted, set_dotted
from dlrun.config.loader import apply_overrides, check_text, dump_config, read_config_file, validate_data
from dlrun.config.sweep_checks import SAMPLED, check_space, resolve_ranking
from dlrun.config.sweep_schema import value_list
from dlrun.errors import ConfigError, Problem
from dlrun.sweeps.flags import SweepSourceMap, merge_flags
from dlrun.sweeps.scoring import Scoring


@dataclass(frozen=True)
class Trial:
    """One point of the space: its id (000, 001, ...), swept values (as validated) and full config."""

    id: str
    params: dict[str, Any]
    config: LoadedConfig
    round: int = 0  # 0: the grid, zip or sampled round; 1, 2, ...: refinement rounds
    point: str = ""  # the point this trial is a seed of (sweep.repeats > 1); "": the trial is its own point
    rep: int = 0  # which of the point's seeds: its seed is the point's + rep

    @property
    def point_id(self) -> str:
        """The id of the point this trial belongs to (its own id when every point runs one seed)."""
        return self.point or self.id

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
        """How the space is searched: grid, zip, random or tpe."""
        assert self.base.config.sweep is not None
        return self.base.config.sweep.method

    @property
    def draws_heatmap(self) -> bool:
        """Whether the sweep's end draws heatmap.png: a grid of one or two keys (points as rows, columns)."""
        return self.mode == "grid" and len(self.keys) <= 2

    @property
    def rounds(self) -> int:
        """1 + the refinement rounds."""
        assert self.base.config.sweep is not None
        refine = self.base.config.sweep.refine
        return 1 + (refine.rounds if refine else 0)

    @property
    def seed(self) -> int:
        """The seed of the sweep's sampling and shuffling: sweep.seed, else the config's seed."""
        sweep = self.base.config.sweep
        assert sweep is not None
        return sweep.seed if sweep.seed is not None else self.base.config.seed

    @property
    def sampled(self) -> bool:
        """Trials are asked of the search engine one at a time (random, tpe, or refinement rounds follow)."""
        sweep = self.base.config.sweep
        assert sweep is not None
        return sweep.method in SAMPLED or sweep.refine is not None or sweep.prune.method != "none"

    @property
    def points_planned(self) -> int:
        """How many points the sweep tries in all, refinement rounds included."""
        sweep = self.base.config.sweep
        assert sweep is not None
        first = sweep.trials or 0 if sweep.method in SAMPLED else grid_size(sweep.method, sweep.params)
        return first + (sweep.refine.rounds * sweep.refine.trials if sweep.refine else 0)

    @property
    def planned(self) -> int:
        """How many trials (run directories) the sweep runs in all: each point once per seed."""
        return self.points_planned * self.repeats

    @property
    def repeats(self) -> int:
        """Seeds per point (sweep.repeats)."""
        assert self.base.config.sweep is not None
        return self.base.config.sweep.repeats

    @property
    def width(self) -> int:
        """Digits of a point id (000, 001, ...)."""
        return max(3, len(str(self.points_planned - 1)))

    @property
    def scoring(self) -> Scoring:
        """How trials are scored: sweep.metric, sweep.goal, sweep.score."""
        assert self.base.config.sweep is not None
        return Scoring(self.metric, self.goal, self.base.config.sweep.score)

    def point_ids(self) -> list[str]:
        """The points so far, in the order of their trials."""
        return list(dict.fromkeys(t.point_id for t in self.trials))

    def seeds_of(self, point: str) -> list[Trial]:
        """The trials (one per seed) of point `point`, in seed order."""
        return [t for t in self.trials if t.point_id == point]

    def add_point(self, point: Trial) -> list[Trial]:
        """Append the trials of `point` (its values with the base seed) and return them: `point` itself when
        sweep.repeats is 1, else one trial per seed, `ID-R` with seed + R for R = 0 .. repeats-1."""
        cfg, lc = point.config.config, point.config
        seeds = [point] if self.repeats == 1 else [
            Trial(f"{point.id}-{r}", point.params, LoadedConfig(cfg.model_copy(update={"seed": cfg.seed + r}),
                                                                lc.source, lc.path), point.round, point.id, r)
            for r in range(self.repeats)]
        self.trials.extend(seeds)
        return seeds

    @property
    def metric(self) -> str:
        assert self.base.config.sweep is not None
        return self.base.config.sweep.metric

    @property
    def goal(self) -> str:
        assert self.base.config.sweep is not None
        return self.base.config.sweep.goal

    @property
    def objectives(self) -> list[tuple[str, str]]:
        """(metric, goal) of each of sweep.objectives; empty for a single-metric sweep."""
        assert self.base.config.sweep is not None
        return [(o.metric, o.goal) for o in self.base.config.sweep.objectives or []]

    def values(self, key: str) -> list[Any]:
        """The distinct validated values of `key`, in the order of the space."""
        seen: list[Any] = []
        for trial in self.trials:
            if trial.params[key] not in seen:
                seen.append(trial.params[key])
        return seen

    def spec_yaml(self) -> str:
        """sweep.yaml: the resolved base config with its parameter space; `dlrun sweep` runs it again."""
        seeds = f", {self.repeats} seeds each" if self.repeats > 1 else ""
        head = (f"# dlrun sweep: {self.points_planned} points{seeds} ({self.mode} over {', '.join(self.keys)}).\n"
                "# The resolved base config and the parameter space; resume with dlrun sweep --resume DIR.\n")
        return head + dump_config(self.base.config)


def load_sweep_config(path: str | Path, overrides: list[str] | None = None, lr: str | None = None,
                      lam: str | None = None, mode: str | None = None, **settings: Any) -> LoadedConfig:
    """The base config with the final parameter space in its `sweep:` section, validated and checked.
    `settings`: search, trials, refine (the flags --search, --trials, --refine)."""
    data, plain = read_config_file(path)
    source = SweepSourceMap(file=plain.file, lines=plain.lines)
    data = apply_overrides(data, list(overrides or []), source)
    merge_flags(data, source, {"lr": lr, "lambda": lam}, {"mode": mode, **settings})
    check_text(data, source)
    base = LoadedConfig(validate_data(data, source), source, Path(path))
    checks.run_static_checks(base)
    resolve_ranking(base)
    problems = check_space(base)
    if problems:
        raise ConfigError(problems)
    return base


def grid_size(mode: str, params: dict[str, Any]) -> int:
    """How many trials `expand` gives (without building them)."""
    sizes = [len(value_list(v)) for v in params.values()]
    return math.prod(sizes) if mode == "grid" else min(sizes, default=0)


def expand(mode: str, params: dict[str, Any]) -> list[dict[str, int]]:
    """Indices into each value list, one mapping per trial: cartesian product (grid) or pairs (zip)."""
    keys = list(params)
    ranges = [range(len(value_list(params[k]))) for k in keys]
    combos = itertools.product(*ranges) if mode == "grid" else zip(*ranges, strict=True)
    return [dict(zip(keys, combo, strict=True)) for combo in combos]


def _trial_config(base: LoadedConfig, trial_id: str, values: dict[str, Any],
                  origins: dict[str, str]) -> LoadedConfig:
    """Base config dict (without `sweep:`) with the trial's values set, validated like a file; a bad value
    is located at `origins[key]` (its list item, or its range)."""
    assert isinstance(base.source, SweepSourceMap)
    data = base.config.to_dict()
    data["sweep"] = None
    source = SweepSourceMap(file=base.source.file, lines=base.source.lines, overrides=base.source.overrides,
                            flags=base.source.flags, swept=origins)
    shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
    try:
        for key, value in values.items():
            set_dotted(data, key, value)
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


def make_trial(base: LoadedConfig, trial_id: str, values: dict[str, Any], round_: int = 0,
               origins: dict[str, str] | None = None) -> Trial:
    """A trial with these swept values (sampled, or a grid point): its validated config. Raises ConfigError."""
    origins = origins or {k: f"sweep.params.{k}" for k in values}
    loaded = _trial_config(base, trial_id, values, origins)
    resolved = loaded.config.to_dict()
    return Trial(trial_id, {k: get_dotted(resolved, k) for k in values}, loaded, round_)


def plan_sweep(path: str | Path, overrides: list[str] | None = None, lr: str | None = None,
               lam: str | None = None, mode: str | None = None, **settings: Any) -> SweepPlan:
    """Load the config, build the space and expand it into validated trials (none yet for random and
    tpe: the search engine asks for them as the sweep runs). `settings`: search, trials, refine.
    Raises ConfigError."""
    base = load_sweep_config(path, overrides, lr, lam, mode, **settings)
    sweep = base.config.sweep
    assert sweep is not None
    if sweep.method in SAMPLED:
        return SweepPlan(base, [])
    params = {k: value_list(v) for k, v in sweep.params.items()}
    combos = expand(sweep.method, params)
    plan = SweepPlan(base, [])
    width = plan.width
    points = [make_trial(base, f"{n:0{width}d}", {k: params[k][i] for k, i in indices.items()},
                         origins={k: f"sweep.params.{k}.{i}" for k, i in indices.items()})
              for n, indices in enumerate(combos)]
    _check_distinct(base, points, combos)
    for point in points:
        plan.add_point(point)
    return plan

