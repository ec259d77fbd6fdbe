"""Property-based: whatever YAML document (and `--set` overrides) `dlrun validate` is given,
load_config either returns a config or raises ConfigError, never anything else."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlrun.config import LoadedConfig, load_config
from dlrun.errors import ConfigError

REAL_KEYS = [
    "name", "seed", "task", "loss", "data", "model", "optimizer", "train", "sweep", "transfer",
    "source", "path", "x", "y", "keys", "image_size", "color", "normalize", "test_split", "validation", "limit",
    "style", "n_train", "n_test", "table", "columns", "rows", "target", "layers", "l2", "l2_layers", "base",
    "from", "application", "weights", "include_top", "trainable", "lr", "momentum", "nesterov", "clipnorm",
    "epochs", "batch_size", "shuffle", "early_stopping", "monitor", "patience", "min_delta", "mode",
    "restore_best_weights", "threads", "mixed_precision", "jit_compile", "steps_per_execution", "params",
    "metric", "goal", "match", "head", "stages", "freeze", "unfreeze", "last",
    "dense", "conv2d", "separable_conv2d", "max_pool2d", "avg_pool2d", "dropout", "flatten", "batch_norm",
    "global_avg_pool2d", "activation", "units", "filters", "kernel_size", "strides", "padding", "rate",
    "pool_size", "epsilon", "use_bias",
    "decay", "schedule", "decay_steps", "decay_rate", "boundaries", "values", "weight_decay", "reduce_lr_on_plateau",
    "factor", "min_lr", "categorical",
]
REAL_VALUES = ["synthetic_digits", "npy", "table", "classification", "regression", "sse", "adam", "sgd", "relu",
               "softmax", "same", "grid", "zip", "features", "all", "none", "max", "min", "auto", "standardize",
               "exponential", "piecewise", "cosine", "inverse_time", "val_loss", "adamw"]

scalars = (st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True, allow_infinity=True)
           | st.sampled_from(REAL_VALUES) | st.text(max_size=12))
keys = st.sampled_from(REAL_KEYS) | st.text(max_size=10) | st.integers(-3, 3) | st.booleans()
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=30,
)
# A valid base, so that mutations reach the cross-field checks and not just the schema.
BASE: dict[str, Any] = {
    "name": "fuzz", "data": {"source": "synthetic_digits"},
    "model": {"layers": [{"flatten": {}}, {"dense": {"units": 10, "activation": "softmax"}}]},
}
real_mappings = st.dictionaries(st.sampled_from(REAL_KEYS), documents, max_size=4)
layer_items = st.dictionaries(st.sampled_from(REAL_KEYS), real_mappings | documents, max_size=2)
# Each section replaced by a random mapping of mostly real keys: reaches the nested schemas and the checks.
sections = st.fixed_dictionaries({}, optional={
    "data": real_mappings, "optimizer": real_mappings, "train": real_mappings, "sweep": real_mappings,
    "transfer": real_mappings, "task": documents,
    "model": st.fixed_dictionaries({"layers": st.lists(layer_items, max_size=4)},
                                   optional={"base": documents, "l2": documents}),
})
dotted_keys = st.lists(st.sampled_from(REAL_KEYS) | st.sampled_from(["0", "1", "-1", ""]), min_size=1, max_size=4)
overrides = st.lists(st.builds(lambda k, v: f"{'.'.join(k)}={v}", dotted_keys,
                               st.sampled_from(["1", "-1", "0.5", "[]", "{}", "x", "", "[1, 2", "null", "true"])),
                     max_size=3)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def validate_text(text: str, sets: list[str] | None = None) -> LoadedConfig | ConfigError:
    """load_config on `text` in a file: the config, or the ConfigError it raised (anything else propagates)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            return load_config(path, sets)
        except ConfigError as error:
            return error


@FUZZ
@given(documents)
def test_any_yaml_document_is_valid_or_a_config_error(doc: Any) -> None:
    result = validate_text(yaml.safe_dump(doc))
    assert isinstance(result, LoadedConfig | ConfigError)


@FUZZ
@given(sections, overrides)
def test_mutated_valid_config_with_overrides_is_valid_or_a_config_error(changes: dict[str, Any],
                                                                        sets: list[str]) -> None:
    result = validate_text(yaml.safe_dump({**BASE, **changes}), sets)
    assert isinstance(result, LoadedConfig | ConfigError)


@FUZZ
@given(st.text(max_size=200))
def test_any_text_is_valid_or_a_config_error(text: str) -> None:
    assert isinstance(validate_text(text), LoadedConfig | ConfigError)


def test_config_errors_render_one_line_per_problem() -> None:
    error = validate_text("model: {layers: []}\ntrain: {epochs: 0, batch_size: -1}\n")
    assert isinstance(error, ConfigError) and len(error.lines()) == len(error.problems) == 3
