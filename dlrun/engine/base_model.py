"""`model.base`: a saved model's feature layers, or a keras application, as the first layer of a
model, with `model.layers` stacked on top. Imported only on paths that build models (loads Keras)."""

from __future__ import annotations

import contextlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlrun.config import LoadedConfig, load_config
from dlrun.config.applications import APPLICATIONS, SAVED_MODEL_FILE, cached_imagenet, imagenet_message
from dlrun.config.layers import layer_names
from dlrun.config.schema import BaseModelConfig
from dlrun.engine import backend
from dlrun.engine.model import build_model, make_layer
from dlrun.engine.saved_bases import keras2_layers, saved_model_layer
from dlrun.errors import WeightsError
from dlrun.store.names import CONFIG
from dlrun.store.rundir import find_run_dir
from dlrun.weights import SourceLayer, describe_shapes, read_weights
from dlrun.weights.mapping import LOADED, NEW, MapRow
from dlrun.weights.walk import weighted_layers

BASE_NAME = "base"
TOP_TYPES = frozenset({"flatten", "global_avg_pool2d", "dense"})
TOP_CLASSES = frozenset({"Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Dense"})
@dataclass
class Base:
    """A built base model and where each of its weight-bearing layers got its weights."""

    model: Any
    rows: dict[str, MapRow] = field(default_factory=dict)


def build_with_base(lc: LoadedConfig, input_shape: tuple[int, ...], unsafe: bool = False,
                    distributed: bool = True) -> tuple[Any, Base | None]:
    """The config's compiled model, with its `model.base` built first when it has one (`unsafe`
    allows code in a .keras base); returns (model, base or None). Under `train.distribute` (unless
    `distributed` is False: a model that only evaluates or predicts), both are built (and the base's
    weights loaded) in the strategy's scope."""
    from dlrun.engine.distribute import strategy_scope

    with strategy_scope(lc) if distributed else contextlib.nullcontext():
        base = build_base(lc, input_shape, unsafe) if lc.config.model.base is not None else None
        return build_model(lc, input_shape, base=base.model if base else None), base


def build_base(lc: LoadedConfig, input_shape: tuple[int, ...], unsafe: bool = False) -> Base:
    """The base model for `lc.config.model.base`, named `base`, trainable as configured."""
    cfg = lc.config.model.base
    assert cfg is not None
    if cfg.application:
        model, source = _application(lc, cfg, input_shape)
    else:
        model, source = _saved(lc, cfg, input_shape, unsafe)
    rows = _copy_weights(model, source, cfg.from_ or cfg.weights or "") if source is not None or cfg.application \
        else {}  # a SavedModel brings its own weights inside its function
    model.trainable = cfg.trainable
    return Base(model, rows)


def _application(lc: LoadedConfig, cfg: BaseModelConfig, input_shape: tuple[int, ...]) -> tuple[Any, Any]:
    keras = backend.keras()
    assert cfg.application is not None
    weights = cfg.weights
    if weights == "imagenet":  # only from the Keras cache: never downloaded
        cached = cached_imagenet(cfg.application)
        if cached is None:
            raise lc.error("model.base.weights", imagenet_message(cfg.application))
        weights = str(cached)
    if weights:
        read_weights(weights)  # a missing, corrupt or truncated file is refused before building
    builder = getattr(keras.applications, APPLICATIONS[cfg.application])
    try:
        app = builder(input_shape=input_shape, include_top=cfg.include_top, weights=None)
    except ValueError as exc:
        reason = str(exc).splitlines()[0]
        raise lc.error("model.base.application", f"{cfg.application} cannot take input {input_shape}: {reason}. "
                       "It needs images of at least 32x32 (data.image_size), rgb for imagenet-style weights "
                       "(data.color: rgb)") from None
    model = keras.Model(app.input, app.output, name=BASE_NAME)
    return model, read_weights(weights, model).layers if weights else None


def _saved(lc: LoadedConfig, cfg: BaseModelConfig, input_shape: tuple[int, ...], unsafe: bool) -> tuple[Any, Any]:
    """A fresh Sequential of the saved model's layers (its feature part unless include_top) for this input."""
    keras = backend.keras()
    path = Path(cfg.from_ or "")
    if (path / SAVED_MODEL_FILE).is_file():  # a TensorFlow SavedModel: one fixed function, its weights inside
        layers, source_layers = [saved_model_layer(path, unsafe)], None
    elif path.suffix.lower() in (".h5", ".hdf5") and not path.name.lower().endswith(".weights.h5"):
        source_layers = read_weights(path).layers  # links and datasets checked before the config is read
        layers = _keras2(path, cfg.include_top)
    else:
        layers, source_layers = _run_or_keras(lc, cfg, path, unsafe)
    if not layers:
        raise lc.error("model.base.from", f"{path} has no layers before its top; set include_top: true "
                       "or use a model with convolution layers")
    try:
        model = keras.Sequential([keras.Input(shape=input_shape), *layers], name=BASE_NAME)
    except ValueError as exc:
        raise lc.error("model.base.from", f"the layers of {path} cannot take input {input_shape}: "
                       f"{str(exc).splitlines()[0]}") from None
    return model, source_layers


def _keras2(path: Path, include_top: bool) -> list[Any]:
    """A Keras-2 full-model .h5's layers rebuilt from its config (no code from the file runs)."""
    layers = keras2_layers(path)
    return layers if include_top else _features(layers)


def _features(layers: list[Any]) -> list[Any]:
    """The layers before the first top (flatten, pooling to a vector, dense) layer."""
    return layers[:next((i for i, layer in enumerate(layers) if type(layer).__name__ in TOP_CLASSES), len(layers))]


def _run_or_keras(lc: LoadedConfig, cfg: BaseModelConfig, path: Path, unsafe: bool) -> tuple[list[Any], Any]:
    """The layers of a run directory (rebuilt from its config) or a .keras file, and their weights."""
    source = read_weights(path)  # refuses missing, corrupt and truncated files with one line
    if path.is_dir():
        run_cfg = load_config(find_run_dir(path) / CONFIG).config
        items = run_cfg.model.layers
        cut = len(items) if cfg.include_top else next((i for i, t in enumerate(items) if t.type in TOP_TYPES),
                                                     len(items))
        mixed = lc.config.train.mixed_precision  # the target's precision, not the one the source trained with
        layers = [make_layer(run_cfg, i, name, mixed=mixed, output=False)
                  for i, name in enumerate(layer_names(run_cfg.model.layers)[:cut])]
    else:
        saved = _load_architecture(source.path, source.kind, unsafe)
        kept = [layer for layer in saved.layers if type(layer).__name__ != "InputLayer"]
        layers = kept if cfg.include_top else _features(kept)  # the deserialised layers themselves:
    return layers, source.layers                                 # rebuilding them would run code again


def _load_architecture(path: Path, kind: str, unsafe: bool) -> Any:
    """Deserialise a .keras file (safe mode unless `unsafe`); a Keras-2 .h5 goes to saved_bases."""
    if kind in ("weights.h5", "run"):
        raise WeightsError(f"{path}: holds weights only, no architecture; a base needs a run directory, a .keras "
                           "file or a full-model .h5. For a weights file, write the layers under model.layers "
                           "and give the file as transfer.from")
    keras = backend.keras()
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except ValueError as exc:
        reason = str(exc).splitlines()[0]
        if "safe_mode" in str(exc) or "unsafe" in str(exc).lower():
            raise WeightsError(f"{path}: holds code (a Lambda layer) that would run on loading; pass --unsafe "
                               "only if you trust this file") from None
        raise WeightsError(f"{path}: cannot rebuild the saved model ({reason})") from None
    except (OSError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"{path}: cannot rebuild the saved model ({str(exc).splitlines()[0]})") from None


def _copy_weights(model: Any, source: list[SourceLayer] | None, label: str) -> dict[str, MapRow]:
    """Load `source` into the base's weight-bearing layers (by name when every name is there, else by
    order); the mapping rows for the report. WeightsError naming the first layer that does not fit."""
    targets = weighted_layers(model)
    rows = {}
    source = source or []
    by_name = {s.name: i for i, s in enumerate(source)}
    named = bool(source) and all(t.name in by_name for t in targets)
    for k, layer in enumerate(targets):
        shapes = [tuple(w.shape) for w in layer.weights]
        row = MapRow(f"{BASE_NAME}/{layer.name}", type(layer).__name__, shapes)
        index = by_name[layer.name] if named else (k if k < len(source) else None)
        if index is not None:
            src = source[index]
            if src.shapes != shapes:
                raise WeightsError(f"{label}: layer '{src.name}' has {describe_shapes(src.shapes)} but base layer "
                                   f"'{layer.name}' expects {describe_shapes(shapes)} for this input; check "
                                   "data.image_size and data.color match the saved model's")
            layer.set_weights(src.arrays)
            row.source, row.source_shapes, row.status, row.source_index = src.name, src.shapes, LOADED, index
        else:
            row.status = NEW
        rows[row.target] = row
    return rows
