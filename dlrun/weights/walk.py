"""The one walk over a model's layer tree: nested models (a base model) are flattened into their
layers, named `outer/inner`. Used to load weights, to plan transfers and to set trainability.
Duck-typed on `.layers` and `.weights`, so nothing here imports Keras."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Leaf:
    """A layer that is not a model: its qualified name, the nested model it sits in (if any), itself."""

    name: str
    parent: str | None
    layer: Any


def leaf_layers(model: Any, prefix: str = "", parent: str | None = None) -> list[Leaf]:
    """Every layer of `model` in order, nested models flattened (input layers left out)."""
    out: list[Leaf] = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if hasattr(layer, "layers"):
            out.extend(leaf_layers(layer, f"{prefix}{layer.name}/", parent or layer.name))
        else:
            out.append(Leaf(f"{prefix}{layer.name}", parent, layer))
    return out


def weighted_layers(model: Any) -> list[Any]:
    """The layers of `model` that hold weights, in order (nested models flattened)."""
    return [leaf.layer for leaf in leaf_layers(model) if leaf.layer.weights]
