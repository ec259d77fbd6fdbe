"""Read weights from any source dlrun accepts, without TensorFlow, and copy them into a model.

Sources: a run directory, a Keras 3 `.weights.h5`, a `.keras` archive, or a legacy Keras-2 `.h5`
(weights-only or full model). Each is read into an ordered list of weight-bearing layers, so
evaluate and transfer share one mapping with shape checks and readable errors.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlrun import rundir
from dlrun.errors import WeightsError


@dataclass
class SourceLayer:
    """A weight-bearing layer of a source file: its name and arrays in Keras order."""

    name: str
    arrays: list[np.ndarray]

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(a.shape) for a in self.arrays]


@dataclass
class Source:
    """The resolved weights file and its weight-bearing layers in model order."""

    path: Path
    kind: str
    layers: list[SourceLayer]


def resolve(target: str | Path) -> tuple[Path, str]:
    """(weights file, kind) for a run directory or a weights file; WeightsError when neither."""
    path = Path(target)
    if path.is_dir():
        weights = path / rundir.WEIGHTS
        if not weights.is_file():
            raise WeightsError(f"{path}: no {rundir.WEIGHTS}; expected a run directory from `dlrun train` "
                               "(a run that finished) or a weights file")
        return weights, "run"
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file or run directory")
    name = path.name.lower()
    if name.endswith(".weights.h5"):
        return path, "weights.h5"
    if name.endswith(".keras"):
        return path, "keras"
    if name.endswith((".h5", ".hdf5")):
        return path, "legacy_h5"
    raise WeightsError(f"{path}: unknown weights format; expected .weights.h5, .keras, .h5 or a run directory")


def read_weights(target: str | Path, model: Any = None) -> Source:
    """Read the weight-bearing layers of `target` in model order. WeightsError on any damage.

    A bare Keras 3 `.weights.h5` files layers by class (conv2d, conv2d_1, dense, ...) without names
    or order; `model` (an architecture believed to match) then supplies both, as Keras' own
    `load_weights` would. Without it, such layers come in natural key order under their keys.
    """
    path, kind = resolve(target)
    try:
        if kind == "keras":
            layers = _read_keras_archive(path)
        elif kind == "legacy_h5":
            layers = _read_legacy_h5(path)
        else:
            order = _order_hint(path) if kind == "run" else None
            with _h5(path) as f:
                layers = _read_keras3_h5(f, order or (model_entries(model) if model is not None else None))
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"{path}: corrupt or truncated weights file ({reason})") from None
    if not layers:
        raise WeightsError(f"{path}: holds no layer weights")
    return Source(path, kind, layers)


def _h5(path_or_file: Any) -> Any:
    import h5py

    return h5py.File(path_or_file, "r")


def _decode(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _read_legacy_h5(path: Path) -> list[SourceLayer]:
    with _h5(path) as f:
        group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        if "layer_names" not in group.attrs:
            if "layers" in group or "vars" in group:  # a Keras 3 weights file saved with a plain .h5 name
                return _read_keras3_h5(group, None)
            raise WeightsError(f"{path}: not a Keras weights file (no layer_names attribute)")
        layers = []
        for name in (_decode(n) for n in group.attrs["layer_names"]):
            g = group[name]
            arrays = [np.asarray(g[_decode(w)]) for w in g.attrs.get("weight_names", [])]
            if arrays:
                layers.append(SourceLayer(name, arrays))
        return layers


def _natural_key(name: str) -> tuple[str, int]:
    match = re.match(r"^(.*?)(?:_(\d+))?$", name)
    assert match is not None
    return match.group(1), int(match.group(2) or 0)


@dataclass
class _Entry:
    """A layer as Keras 3 files it: `key` is the group name (class-based), `name` the layer's own."""

    key: str
    name: str
    children: list[_Entry] | None = None


def snake_case(class_name: str) -> str:
    """Keras' group name for a layer class (Conv2D -> conv2d, BatchNormalization -> batch_normalization)."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _entries(layers: list[tuple[str, str, list[_Entry] | None]]) -> list[_Entry]:
    """Keras 3 files a model's layers under `<class>`, `<class>_1`, ... counted per class in model
    order (not under their names), so the order comes from the architecture: (class, name, children)."""
    used: dict[str, int] = {}
    out = []
    for class_name, name, children in layers:
        key = snake_case(class_name)
        used[key] = used.get(key, -1) + 1
        out.append(_Entry(key if used[key] == 0 else f"{key}_{used[key]}", name, children))
    return out


def _read_keras3_h5(f: Any, order: list[_Entry] | None) -> list[SourceLayer]:
    """Keras 3 layout: layers/<key>/vars/<i>, nested models as layers/<key>/layers/...; layers in
    `order` (from the architecture) first, any others by natural key order."""
    found: list[SourceLayer] = []

    def walk(group: Any, entries: list[_Entry] | None) -> None:
        if "layers" not in group:
            return
        present = set(group["layers"].keys())
        plan = [e for e in entries or [] if e.key in present]
        covered = {e.key for e in plan}
        plan += [_Entry(key, key) for key in sorted(present - covered, key=_natural_key)]
        for entry in plan:
            layer = group["layers"][entry.key]
            if "layers" in layer:
                walk(layer, entry.children)
                continue
            vars_group = layer.get("vars")
            if vars_group is not None and len(vars_group):
                arrays = [np.asarray(vars_group[k]) for k in sorted(vars_group.keys(), key=int)]
                found.append(SourceLayer(entry.name, arrays))

    walk(f, order)
    return found


def _order_hint(weights: Path) -> list[_Entry] | None:
    """Layer order from a dlrun config.yaml beside the weights (a run directory), if there is one."""
    config = weights.parent / rundir.CONFIG
    if not config.is_file():
        return None
    from dlrun.config import load_config
    from dlrun.errors import ConfigError
    from dlrun.model import KERAS_LAYERS, layer_names

    try:
        cfg = load_config(config).config
    except ConfigError:
        return None
    layers: list[tuple[str, str, list[_Entry] | None]] = []
    if cfg.model.base is not None:  # dlrun builds a base as a Sequential, an application as a Functional
        layers.append(("Functional" if cfg.model.base.application else "Sequential", "base", None))
    layers += [(KERAS_LAYERS[item.type][0], name, None)
               for item, name in zip(cfg.model.layers, layer_names(cfg), strict=True)]
    return _entries(layers)


def model_entries(model: Any) -> list[_Entry]:
    """The layer order of a live keras model, as its Keras 3 weights file would hold it."""
    return _entries([(type(layer).__name__, layer.name, model_entries(layer) if hasattr(layer, "layers") else None)
                     for layer in model.layers])


def _config_entries(config: dict[str, Any]) -> list[_Entry] | None:
    """The layer order of a .keras config.json (nested Sequential/Functional models included)."""
    layers = config.get("config", {}).get("layers") if isinstance(config.get("config"), dict) else None
    if not isinstance(layers, list):
        return None
    items = []
    for layer in layers:
        if isinstance(layer, dict) and isinstance(layer.get("config"), dict):
            nested = _config_entries(layer) if isinstance(layer["config"].get("layers"), list) else None
            items.append((str(layer.get("class_name")), str(layer["config"].get("name")), nested))
    return _entries(items)


def _read_keras_archive(path: Path) -> list[SourceLayer]:
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        blob = archive.read("model.weights.h5")
    with _h5(io.BytesIO(blob)) as f:
        return _read_keras3_h5(f, _config_entries(config) if isinstance(config, dict) else None)


def weighted_layers(model: Any) -> list[Any]:
    """The layers of `model` that hold weights, in order (nested models flattened)."""
    out = []
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.weights:
            out.extend(weighted_layers(layer))
        elif layer.weights:
            out.append(layer)
    return out


def describe_shapes(shapes: list[tuple[int, ...]]) -> str:
    """`(3, 3, 1, 16) + (16,)`."""
    return " + ".join(str(tuple(s)) for s in shapes) or "-"


def load_into(model: Any, target: str | Path) -> Source:
    """Copy weights from `target` into `model`, layer by layer in order; every layer must fit.

    Raises WeightsError naming the first layer whose shapes differ (a different architecture).
    """
    source = read_weights(target)
    layers = weighted_layers(model)
    if len(layers) != len(source.layers):
        raise WeightsError(f"{source.path}: weights from a different architecture: the file has "
                           f"{len(source.layers)} weight-bearing layers, the model has {len(layers)}")
    for layer, src in zip(layers, source.layers, strict=True):
        expected = [tuple(w.shape) for w in layer.weights]
        if expected != src.shapes:
            raise WeightsError(f"{source.path}: weights from a different architecture: layer '{layer.name}' "
                               f"expects {describe_shapes(expected)}, the file's '{src.name}' has "
                               f"{describe_shapes(src.shapes)}")
    for layer, src in zip(layers, source.layers, strict=True):
        layer.set_weights(src.arrays)
    return source
