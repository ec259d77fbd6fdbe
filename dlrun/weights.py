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


def read_weights(target: str | Path) -> Source:
    """Read the weight-bearing layers of `target` in model order. WeightsError on any damage."""
    path, kind = resolve(target)
    try:
        if kind == "keras":
            layers = _read_keras_archive(path)
        elif kind == "legacy_h5":
            layers = _read_legacy_h5(path)
        else:
            with _h5(path) as f:
                layers = _read_keras3_h5(f, _order_hint(path))
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


def _read_keras3_h5(f: Any, order: list[str] | None) -> list[SourceLayer]:
    """Keras 3 layout: layers/<name>/vars/<i>, nested models as layers/<name>/layers/..."""
    found: list[SourceLayer] = []

    def walk(group: Any, order_hint: list[str] | None) -> None:
        if "layers" not in group:
            return
        names = list(group["layers"].keys())
        if order_hint and set(order_hint) <= set(names):
            names = order_hint + [n for n in names if n not in order_hint]
        else:
            names.sort(key=_natural_key)
        for name in names:
            layer = group["layers"][name]
            if "layers" in layer:
                walk(layer, None)
                continue
            vars_group = layer.get("vars")
            if vars_group is not None and len(vars_group):
                arrays = [np.asarray(vars_group[k]) for k in sorted(vars_group.keys(), key=int)]
                found.append(SourceLayer(name, arrays))

    walk(f, order)
    return found


def _order_hint(weights: Path) -> list[str] | None:
    """Layer order from a dlrun config.yaml beside the weights (a run directory), if there is one."""
    config = weights.parent / rundir.CONFIG
    if not config.is_file():
        return None
    from dlrun.config import load_config
    from dlrun.errors import ConfigError
    from dlrun.model import layer_names

    try:
        return layer_names(load_config(config).config)
    except ConfigError:
        return None


def _read_keras_archive(path: Path) -> list[SourceLayer]:
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        blob = archive.read("model.weights.h5")
    order = [layer["config"]["name"] for layer in config.get("config", {}).get("layers", [])
             if isinstance(layer, dict) and "config" in layer and "name" in layer["config"]]
    with _h5(io.BytesIO(blob)) as f:
        return _read_keras3_h5(f, order or None)


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
