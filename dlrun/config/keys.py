"""Dotted config keys (`optimizer.lr`, `model.layers.0.dense.units`): which exist, and reading and
writing them in plain nested data."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from dlrun.config.layers import ITEM_CLASSES
from dlrun.config.schema import ExperimentConfig


def unwrap_models(annotation: Any) -> list[type[BaseModel]]:
    """Pydantic model classes reachable from a field annotation (through Optional, list, Annotated)."""
    found: list[type[BaseModel]] = []
    stack = [annotation]
    while stack:
        ann = stack.pop()
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            found.append(ann)
            continue
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            stack.append(typing.get_args(ann)[0])
        elif origin in (typing.Union, types.UnionType, list, tuple, dict):
            stack.extend(typing.get_args(ann))
    return found


def known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at the mapping `loc` (a pydantic location) of ExperimentConfig."""
    return list(fields_at(loc))


def _is_mapping(annotation: Any) -> bool:
    """A `dict[...]` field (through Optional, Annotated): its keys are free, e.g. sweep.params."""
    stack = [annotation]
    while stack:
        ann = stack.pop()
        origin = typing.get_origin(ann)
        if origin is dict:
            return True
        if origin is typing.Annotated:
            stack.append(typing.get_args(ann)[0])
        elif origin in (typing.Union, types.UnionType):
            stack.extend(typing.get_args(ann))
    return False


def fields_at(loc: tuple[Any, ...]) -> dict[str, FieldInfo]:
    """The fields allowed at the mapping `loc` of ExperimentConfig, by key (aliases such as `from`). List
    indices and the free keys of a mapping field (`sweep.params.optimizer.lr`) are stepped over: the
    fields at `sweep.params.optimizer.lr` are a range's (log_uniform, uniform, int, choice)."""
    models: list[type[BaseModel]] = [ExperimentConfig]
    free_key = False  # the next part is a key of the mapping field just entered
    for part in loc:
        if isinstance(part, int) or free_key:
            free_key = False
            continue
        if part in ITEM_CLASSES and models and all(part not in m.model_fields for m in models):
            models = [ITEM_CLASSES[part]]
        nxt: list[type[BaseModel]] = []
        for model in models:
            for name, info in model.model_fields.items():
                if part in (name, info.alias):
                    nxt.extend(unwrap_models(info.annotation))
                    free_key = free_key or _is_mapping(info.annotation)
        models = nxt
    return {info.alias or name: info for model in models for name, info in model.model_fields.items()}


def is_config_key(key: str) -> bool:
    """True when `key` (dotted, list indices allowed) names a value of the config schema."""
    parts = key.split(".")
    loc: list[Any] = []
    for part in parts:
        if part.isdigit():
            loc.append(int(part))
            continue
        if part not in known_keys(tuple(loc)):
            return False
        loc.append(part)
    return bool(parts)


def get_dotted(data: Any, key: str) -> Any:
    """The value at dotted `key` in nested dicts/lists (KeyError when absent)."""
    node = data
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.0.c` in nested dicts/lists, creating mappings on the way. Raises KeyError/IndexError."""
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise IndexError(f"'{part}' is not an index of this list (it has {len(node)} items)")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if not isinstance(node.get(part), dict | list):
                    node[part] = {}
                node = node[part]
        else:
            raise TypeError(f"'{'.'.join(parts[:depth])}' is a value, not a section")
