"""The JSON Schema of a config file, for editors: VS Code (with the YAML extension) and any YAML language
server complete and check keys with it. Generated from the pydantic schema, so it carries every field's
description, the layer types and the sweep and transfer sections. `dlrun schema` prints it;
`dlrun.schema.json` at the repository root is the committed copy the shipped configs point at (a test
keeps the two equal: regenerate with `make docs`)."""

from __future__ import annotations

import json
from typing import Any

from dlrun.config.layers import ITEM_CLASSES
from dlrun.config.schema import ExperimentConfig

SCHEMA_FILE = "dlrun.schema.json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
TITLE = "dlrun experiment config"
MODELINE = f"# yaml-language-server: $schema=../{SCHEMA_FILE}"  # the first line of every shipped config


def json_schema() -> dict[str, Any]:
    """The config's JSON Schema (draft 2020-12) as a dict."""
    schema = ExperimentConfig.model_json_schema(by_alias=True, mode="validation")
    for name, cls in ITEM_CLASSES.items():  # `- flatten:` (null) means `- flatten: {}`, as the loader reads it
        prop = schema["$defs"][cls.__name__]["properties"][name]
        schema["$defs"][cls.__name__]["properties"][name] = {
            "anyOf": [{"$ref": prop.pop("$ref")}, {"type": "null"}], **prop}
    tensorboard = schema["$defs"]["TrainConfig"]["properties"]["tensorboard"]  # `tensorboard: false` works too
    tensorboard["anyOf"] = [{"type": "boolean"}, {"$ref": tensorboard.pop("$ref")}]
    schema["title"] = TITLE
    return {"$schema": DRAFT, **schema}


def schema_text() -> str:
    """The schema as `dlrun schema` prints it (and the committed file holds it): indented JSON."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
