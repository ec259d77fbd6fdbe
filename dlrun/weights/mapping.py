"""How the weight-bearing layers of a model got their weights: one row per layer, naming its
source layer and whether it was loaded, is new, was re-initialised, or does not fit."""

from __future__ import annotations

from dataclasses import dataclass, field

LOADED, REINIT, NEW, MISMATCH = "loaded", "re-initialised", "new", "MISMATCH"
Shapes = list[tuple[int, ...]]


@dataclass
class MapRow:
    """One weight-bearing target layer: where its weights come from and whether it trains per stage."""

    target: str
    kind: str
    target_shapes: Shapes
    source: str | None = None
    source_shapes: Shapes | None = None
    status: str = NEW
    note: str = ""
    source_index: int | None = None
    trainable: dict[str, bool] = field(default_factory=dict)
