"""Copying weights from a file into a live model, layer by layer with shape checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlrun.errors import WeightsError
from dlrun.weights.read import Progress, read_weights
from dlrun.weights.source import Source, describe_shapes
from dlrun.weights.walk import weighted_layers


def load_into(model: Any, target: str | Path, progress: Progress | None = None) -> Source:
    """Copy weights from `target` into `model`, layer by layer in order; every layer must fit.
    `progress` hears how reading the file goes.

    A bare Keras 3 `.weights.h5` holds its layers by class, not in order: `model` (the config's
    architecture) supplies the order, as Keras' own `load_weights` does.
    Raises WeightsError naming the first layer whose shapes differ (a different architecture).
    """
    source = read_weights(target, model, progress=progress)
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
