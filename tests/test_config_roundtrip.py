"""Every config dlrun writes reads back to an equal config (issue 23, item 1): a property over the whole
schema (strategies generated from its JSON Schema: every section, layer type, schedule kind, sweep and
transfer setting) validated -> written by dump_config -> read by the loader -> equal, writing adding no
problem to the cross-field checks' verdict; and every schedule kind, a sweep and a transfer end to end
through load_config. (conftest also reads back every config.yaml and best.yaml the suite writes.)"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_MLP, deep_merge, write_config
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from schema_strategies import config_strategies

from dlrun.config import LoadedConfig, dump_config, load_config
from dlrun.config.checks import STATIC_CHECKS
from dlrun.config.loader import check_text, read_config_file, validate_data
from dlrun.config.sourcemap import SourceMap
from dlrun.errors import ConfigError

SWEPT_KEYS = ["optimizer.lr", "model.l2", "train.batch_size", "optimizer.momentum", "seed", "data.limit",
              "optimizer.schedule.decay_rate", "model.layers.1.dense.units"]
OUTPUT_LAYERS = st.sampled_from([{"dense": {"units": 10, "activation": "softmax"}}, {"dense": {"units": 10}},
                                 {"dense": {"units": 1}}])


def _with_output_layer(layers: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly generated layers, flatten, then an output layer, so that many configs pass every check."""
    realistic = st.tuples(layers, OUTPUT_LAYERS).map(lambda t: [*t[0], {"flatten": {}}, t[1]])
    return realistic | layers


def _present(section: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return section.filter(lambda value: value is not None) | section


STRATEGIES = config_strategies({
    "SweepConfig.params.*key": lambda keys: st.sampled_from(SWEPT_KEYS) | keys,
    "ModelConfig.layers": _with_output_layer,
    "DataConfig.source": lambda sources: st.just("synthetic_digits") | sources,
    # the optional sections, the deepest among them, are drawn more often than their default null
    "root.transfer": _present,
    "root.sweep": _present,
    # data.augment mostly absent: covered, and the other sections still are in the (derandomized) draws
    "DataConfig.augment": lambda augment: st.none() | augment,
    "StageConfig.optimizer": _present,
    "StageConfig.unfreeze": _present,
    # several objectives are a section of their own rules (at least two, a goal each, a pick that names
    # them): mostly absent, so the rest of the sweep section is accepted often enough to be covered
    "SweepConfig.objectives": lambda objectives: st.none() | st.none() | st.none() | objectives,
})
CONFIGS = STRATEGIES.root()
EVERY_SECTION = set(STRATEGIES.defs)


def static_problems(lc: LoadedConfig) -> list[tuple[str, str]]:
    """What the cross-field checks say about a config: (key, message), without the file and line."""
    return [(p.key, p.message) for check in STATIC_CHECKS for p in check(lc)]


def read_back(text: str) -> LoadedConfig:
    """The config `text` holds, read as dlrun reads a config file (the static checks left to the caller)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(text, encoding="utf-8")
        data, source = read_config_file(path)
        check_text(data, source)
        return LoadedConfig(validate_data(data, source), source, path)


def write_and_read(data: dict[str, Any]) -> str:
    """Validate `data`, write it as dlrun does (dump_config) and read it back. Writing adds no problem: the
    schema accepts the text, the cross-field checks find nothing new, and a config they pass (one dlrun
    writes) reads back equal. Returns `refused` (the schema refuses `data`: nothing to write), `problems`
    (the checks refuse it) or `clean`."""
    source = SourceMap(file="generated.yaml")
    try:
        check_text(data, source)
        written = LoadedConfig(validate_data(data, source), source)
    except ConfigError:
        return "refused"
    text = dump_config(written.config)
    try:
        again = read_back(text)
    except ConfigError as error:
        raise AssertionError(f"dlrun wrote a config it cannot read:\n{text}\n{error}") from None
    before = static_problems(written)
    added = set(static_problems(again)) - set(before)
    assert not added, f"written, the config has new problems {sorted(added)}:\n{text}"
    if before:
        return "problems"
    assert again.config == written.config, text
    assert again.config.to_dict() == written.config.to_dict(), text
    return "clean"


covered: set[str] = set()
verdicts: list[str] = []


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(st.data())
def _every_generated_config_reads_back(draw: st.DataObject) -> None:
    STRATEGIES.seen.clear()
    verdict = write_and_read(draw.draw(CONFIGS))
    verdicts.append(verdict)
    if verdict == "refused":
        reject()
    covered.update(STRATEGIES.seen)


def test_every_config_reads_back_equal_over_the_whole_schema() -> None:
    covered.clear()
    verdicts.clear()
    _every_generated_config_reads_back()
    missing = EVERY_SECTION - covered
    assert not missing, f"no generated config the schema accepts used these sections: {sorted(missing)}"
    assert verdicts.count("clean") >= 20, f"too few configs pass every check to test equality: {verdicts}"


SCHEDULES = [
    {"name": "exponential", "decay_steps": 3, "decay_rate": 0.5},
    {"name": "inverse_time", "decay_steps": 3, "decay_rate": 0.5, "staircase": True},
    {"name": "cosine", "decay_steps": 10, "alpha": 0.1, "warmup_steps": 2, "warmup_target": 0.2},
    {"name": "cosine", "decay_steps": 10},
    {"name": "piecewise", "boundaries": [10, 20], "values": [0.05, 0.01, 0.001]},
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: f"{s['name']}-{len(s)}")
def test_a_written_schedule_config_loads_again(tmp_path: Path, schedule: dict[str, Any]) -> None:
    path = write_config(tmp_path, TINY_MLP, optimizer={"lr": 0.05, "schedule": schedule})
    loaded = load_config(path)
    written = tmp_path / "written.yaml"
    written.write_text(dump_config(loaded.config), encoding="utf-8")
    assert load_config(written).config == loaded.config


def test_a_written_sweep_and_transfer_config_loads_again(tmp_path: Path) -> None:
    config = deep_merge(TINY_MLP, {
        "sweep": {"search": "tpe", "trials": 4, "params": {"optimizer.lr": {"log_uniform": [1e-4, 0.1]}},
                  "prune": {"method": "asha", "min_epochs": 1}, "refine": {"rounds": 1, "trials": 2}},
        "transfer": {"stages": [{"name": "head", "epochs": 1},
                                {"name": "all", "freeze": "none", "unfreeze": {"last": 1}, "epochs": 1,
                                 "optimizer": {"lr": 0.001}}]},
    })
    loaded = load_config(write_config(tmp_path, config))
    written = tmp_path / "written.yaml"
    written.write_text(dump_config(loaded.config), encoding="utf-8")
    assert load_config(written).config == loaded.config


@pytest.mark.parametrize(("task_changes", "metric", "goal"), [
    ({}, "val_loss", "min"),  # classification ranked on a loss: the goal follows the metric
    ({"task": "regression", "loss": "mse", "model": {"layers": [{"flatten": {}}, {"dense": {"units": 1}}]}},
     "val_loss", "min"),  # regression: the default metric is val_loss
])
def test_a_written_sweep_config_ranks_as_the_one_it_was_written_from(tmp_path: Path, task_changes: dict[str, Any],
                                                                     metric: str, goal: str) -> None:
    """A sweep section without goal (or metric) is written without them, so the config read back resolves
    them again from its metric and task (a written default `goal: max` would maximise a loss)."""
    from dlrun.sweeps.plan import plan_sweep

    sweep = {"params": {"optimizer.lr": [0.1, 0.01]}} | ({} if task_changes else {"metric": "val_loss"})
    source = write_config(tmp_path, deep_merge(TINY_MLP, task_changes), sweep=sweep)
    written = tmp_path / "written.yaml"
    written.write_text(dump_config(load_config(source).config))
    for path in (source, written):
        plan = plan_sweep(path)
        assert (plan.metric, plan.goal) == (metric, goal), path.name
