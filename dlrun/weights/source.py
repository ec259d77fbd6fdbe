"""What a weights file holds, as every reader returns it: weight-bearing layers in model order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


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


def describe_shapes(shapes: list[tuple[int, ...]]) -> str:
    """`(3, 3, 1, 16) + (16,)`."""
    return " + ".join(str(tuple(s)) for s in shapes) or "-"
