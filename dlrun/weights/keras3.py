"""The Keras 3 weights layout: `layers/<key>/vars/<i>`, where a layer's key comes from its class and
its place in the model (conv2d, conv2d_1, ...), not from its name. The order and names therefore
come from an architecture: a dlrun config, a .keras archive's config.json, or a live model."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.config import load_config
from dlrun.config.layers import LAYER_TYPES, layer_names
from dlrun.errors import ConfigError
from dlrun.store.names import CONFIG
from dlrun.weights.source import SourceLayer


def _natural_key(name: str) -> tuple[str, int]:
    match = re.match(r"^(.*?)(?:_(\d+))?$", name)
    assert match is not None
    return match.group(1), int(match.group(2) or 0)


@dataclass
class Entry:
    """A layer as Keras 3 files it: `key` is the group name (class-based), `name` the layer's own."""

    key: str
    name: str
    children: list[Entry] | None = None


def snake_case(class_name: str) -> str:
    """Keras' group name for a layer class (Conv2D -> conv2d, BatchNormalization -> batch_normalization)."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _entries(layers: list[tuple[str, str, list[Entry] | None]]) -> list[Entry]:
    """Keras 3 files a model's layers under `<class>`, `<class>_1`, ... counted per class in model
    order (not under their names), so the order comes from the architecture: (class, name, children)."""
    used: dict[str, int] = {}
    out = []
    for class_name, name, children in layers:
        key = snake_case(class_name)
        used[key] = used.get(key, -1) + 1
        out.append(Entry(key if used[key] == 0 else f"{key}_{used[key]}", name, children))
    return out


def read_keras3_h5(f: Any, order: list[Entry] | None, tick: Callable[[int], None] | None = None) -> list[SourceLayer]:
    """Keras 3 layout: layers/<key>/vars/<i>, nested models as layers/<key>/layers/...; layers in
    `order` (from the architecture) first, any others by natural key order. `tick(n)` hears each
    layer read (n so far)."""
    found: list[SourceLayer] = []

    def walk(group: Any, entries: list[Entry] | None) -> None:
        if "layers" not in group:
            return
        present = set(group["layers"].keys())
        plan = [e for e in entries or [] if e.key in present]
        covered = {e.key for e in plan}
        plan += [Entry(key, key) for key in sorted(present - covered, key=_natural_key)]
        for entry in plan:
            layer = group["layers"][entry.key]
            if "layers" in layer:
                walk(layer, entry.children)
                continue
            vars_group = layer.get("vars")
            if vars_group is not None and len(vars_group):
                arrays = [np.asarray(vars_group[k]) for k in sorted(vars_group.keys(), key=int)]
                found.append(SourceLayer(entry.name, arrays))
                if tick is not None:
                    tick(len(found))

    walk(f, order)
    return found


def order_hint(weights: Path) -> list[Entry] | None:
    """Layer order from a dlrun config.yaml beside the weights (a run directory), if there is one."""
    config = weights.parent / CONFIG
    if not config.is_file():
        return None
    try:
        cfg = load_config(config).config
    except ConfigError:
        return None
    layers: list[tuple[str, str, list[Entry] | None]] = []
    if cfg.model.base is not None:  # dlrun builds a base as a Sequential, an application as a Functional
        layers.append(("Functional" if cfg.model.base.application else "Sequential", "base", None))
    layers += [(LAYER_TYPES[item.type].keras_class, name, None)
               for item, name in zip(cfg.model.layers, layer_names(cfg.model.layers), strict=True)]
    return _entries(layers)


def model_entries(model: Any) -> list[Entry]:
    """The layer order of a live keras model, as its Keras 3 weights file would hold it."""
    return _entries([(type(layer).__name__, layer.name, model_entries(layer) if hasattr(layer, "layers") else None)
                     for layer in model.layers])


def config_entries(config: dict[str, Any]) -> list[Entry] | None:
    """The layer order of a .keras config.json (nested Sequential/Functional models included)."""
    layers = config.get("config", {}).get("layers") if isinstance(config.get("config"), dict) else None
    if not isinstance(layers, list):
        return None
    items = []
    for layer in layers:
        if isinstance(layer, dict) and isinstance(layer.get("config"), dict):
            nested = config_entries(layer) if isinstance(layer["config"].get("layers"), list) else None
            items.append((str(layer.get("class_name")), str(layer["config"].get("name")), nested))
    return _entries(items)
