"""The editor schema (dlrun.schema.json) and the loader agree on what a number field takes, from one
definition (dlrun/config/section.py): a number, never text such as "1e-3" or "10", never a boolean; an
unquoted `1e-3` is a number to both (YAML 1.2, as editors read it)."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlrun.config import load_config
from dlrun.config.editor_schema import SCHEMA_FILE
from dlrun.config.keys import set_dotted
from dlrun.config.loader import dump_config
from dlrun.config.safe_yaml import compose_and_load, dump
from dlrun.errors import ConfigError

BASE = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
VALIDATOR = jsonschema.Draft202012Validator(json.loads((ROOT / SCHEMA_FILE).read_text()))
NUMBER_FIELDS = [  # (PosFloat, Fraction-like, >= 0, PosInt, bounded int, int | "auto", a layer's float)
    "optimizer.lr", "optimizer.momentum", "model.l2", "train.epochs", "seed", "train.steps_per_execution",
    "model.layers.5.dropout.rate", "data.test_split", "optimizer.decay",
]
EDGE_TEXT = ["1e-3", "1e-400", "1e400", "nan", "inf", "-inf", ".nan", "10", "0", "-1", "0.5", " 1", "1_000",
             "0x10", "1:30", "auto", "", "ten", "true"]
# Finite numbers only: JSON (and so JSON Schema) has no NaN or infinity, and the loader refuses them.
# Magnitudes stay within what the config's memory checks allow (the schema knows nothing of memory).
numbers = (st.integers(-(2**31) - 2, 2**31 + 2) | st.floats(-1e4, 1e4)
           | st.sampled_from([0.0, -0.0, 1e-300, 5e-324, 0.999999, 1.0, 10.0, 2**31, 2**31 - 1]))
values = (numbers | numbers.map(str) | numbers.map(lambda v: f"{v:e}") | st.sampled_from(EDGE_TEXT)
          | st.text(max_size=6) | st.booleans() | st.none())


def loader_accepts(data: dict[str, Any]) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(dump(data))
        try:
            load_config(path)
        except ConfigError:
            return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(NUMBER_FIELDS), value=values)
def test_schema_and_loader_agree_on_number_fields(key: str, value: Any) -> None:
    data = copy.deepcopy(BASE)
    set_dotted(data, key, value)
    assert compose_and_load(dump(data))[1] == data  # the file says what the editor is given
    schema_accepts = not list(VALIDATOR.iter_errors(data))
    assert loader_accepts(data) == schema_accepts, (key, value)


def test_unquoted_exponent_is_a_number_to_the_loader(tmp_path: Path) -> None:
    text = (ROOT / "configs" / "quickstart.yaml").read_text().replace("lr: 0.002", "lr: 1e-3")
    (tmp_path / "c.yaml").write_text(text.replace("epochs: 5", "epochs: 5\n  steps_per_execution: 1E1"))
    loaded = load_config(tmp_path / "c.yaml")
    assert (loaded.config.optimizer.lr, loaded.config.train.steps_per_execution) == (0.001, 10)


def test_quoted_number_is_refused_naming_the_fix(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(dump({**BASE, "optimizer": {"name": "adam", "lr": "1e-3"}}))
    try:
        load_config(tmp_path / "c.yaml")
    except ConfigError as exc:
        message = str(exc)
    assert "optimizer.lr: a number is expected, not text (a quoted value is text in YAML): write it without " \
           "quotes (got '1e-3')" in message


def test_dumped_config_keeps_number_like_text_as_text(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(dump({**BASE, "name": "1e3"}))
    (tmp_path / "again.yaml").write_text(dump_config(load_config(tmp_path / "c.yaml").config))
    assert load_config(tmp_path / "again.yaml").config.name == "1e3"
