"""A resolved config as flat {dotted.key: value} pairs: what `dlrun runs --where`, `dlrun compare` and
MLflow's params read. The one home of two rules: layers are keyed by their Keras name (and kind),
never by position, and settings that do not apply to a run (a synthetic source's `n_train` under an
idx source, `momentum` under adam) are left out. Works on plain data (config.yaml as loaded); no
TensorFlow, no validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dlrun.config.layers import LAYER_TYPES
from dlrun.config.safe_yaml import load_value
from dlrun.errors import RunDirError

# data.<key> -> the sources it applies to (every other key of `data:` applies to every source)
_IMAGE_FILES = frozenset({"npy", "npz", "h5", "idx", "folder", "mnist", "fashion_mnist"})
DATA_KEY_SOURCES: dict[str, frozenset[str]] = {
    "path": frozenset({"npy", "npz", "h5", "idx", "folder", "csv", "mnist", "fashion_mnist"}),
    "x": frozenset({"npy"}),
    "y": frozenset({"npy"}),
    "keys": frozenset({"npz", "h5"}),
    "image_size": _IMAGE_FILES,
    "color": _IMAGE_FILES | {"synthetic_digits"},
    "categorical": frozenset({"csv"}),
    "style": frozenset({"synthetic_digits"}),
    "n_train": frozenset({"synthetic_digits"}),
    "n_test": frozenset({"synthetic_digits"}),
    "table": frozenset({"table"}),
    "target": frozenset({"csv", "table"}),
    "download": frozenset({"mnist", "fashion_mnist"}),
}
# optimizer.<key> -> the optimizers it applies to
OPTIMIZER_KEY_NAMES: dict[str, frozenset[str]] = {
    "momentum": frozenset({"sgd", "rmsprop"}),
    "nesterov": frozenset({"sgd"}),
}


def applies(config: dict[str, Any], section: str, key: str) -> bool:
    """Whether `section.key` means anything for this config (its data source, its optimizer)."""
    if section == "data":
        sources = DATA_KEY_SOURCES.get(key)
        return sources is None or (config.get("data") or {}).get("source", "synthetic_digits") in sources
    if section == "optimizer":
        names = OPTIMIZER_KEY_NAMES.get(key)
        return names is None or (config.get("optimizer") or {}).get("name", "sgd") in names
    return True


def layer_keys(layers: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(key, kind, arguments) per `model.layers` item: the key is the layer's Keras name (dense_1, as
    dlrun names layers), or `name[kind]` for a layer named in the config, so two configs' layers are
    matched by name and kind rather than by position."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    counts: dict[str, int] = {}
    for item in layers if isinstance(layers, list) else []:
        if not (isinstance(item, dict) and len(item) == 1):
            continue
        kind, args = next(iter(item.items()))
        args = dict(args) if isinstance(args, dict) else {}
        prefix = LAYER_TYPES[kind].prefix if kind in LAYER_TYPES else str(kind)
        n = counts.get(prefix, 0)
        counts[prefix] = n + 1
        name = args.pop("name", None)
        out.append((f"{name}[{kind}]" if name else (prefix if n == 0 else f"{prefix}_{n}"), str(kind), args))
    return out


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings and lists as {dotted.key: leaf value} (list items keyed by position; an empty
    mapping or list is a leaf of its own)."""
    if isinstance(data, dict) and data:
        items: list[tuple[str, Any]] = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, list) and data:
        items = [(str(i), v) for i, v in enumerate(data)]
    else:
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in items:
        out.update(flatten(value, f"{prefix}.{key}" if prefix else key))
    return out


def flatten_config(config: dict[str, Any]) -> dict[str, Any]:
    """A config (as config.yaml holds it) as {dotted.key: value}: `model.layers.dense_1` = its kind,
    `model.layers.dense_1.units` = 64, ...; keys that do not apply to this config are left out.

    Args:
        config: The resolved config as plain data.

    Returns:
        The flat mapping, in the config's order.
    """
    out: dict[str, Any] = {}
    for section, value in config.items():
        if section == "model" and isinstance(value, dict):
            for key, inner in value.items():
                if key != "layers":
                    out.update(flatten(inner, f"model.{key}"))
                    continue
                for name, kind, args in layer_keys(inner):
                    out[f"model.layers.{name}"] = kind
                    if args:
                        out.update(flatten(args, f"model.layers.{name}"))
        elif isinstance(value, dict):
            for key, inner in value.items():
                if applies(config, str(section), str(key)):
                    out.update(flatten(inner, f"{section}.{key}"))
        else:
            out[str(section)] = value
    return out


def read_config_file(path: Path) -> dict[str, Any]:
    """A run's config.yaml as plain data ({} when there is none or it is not a mapping).

    Raises:
        RunDirError: the file exists but cannot be read or parsed.
    """
    try:
        data = load_value(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RunDirError(f"{path}: unreadable config ({exc})") from None
    return data if isinstance(data, dict) else {}
