"""The model-ready data set every command trains and evaluates on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Dataset:
    """Model-ready arrays. Labels are integer classes (classification) or floats (regression)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    num_classes: int | None
    class_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    test_is_train: bool = False
    cache: str = "off"  # "hit", "miss" (built and stored) or "off" (not cached)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    def eval_split(self) -> tuple[np.ndarray, np.ndarray]:
        """The arrays final metrics are measured on: the test split, else the training data."""
        if self.x_test is not None and self.y_test is not None:
            return self.x_test, self.y_test
        return self.x_train, self.y_train

    def describe(self) -> str:
        """One line: sizes and shape."""
        n_test = 0 if self.x_test is None else len(self.x_test)
        n_val = 0 if self.x_val is None else len(self.x_val)
        classes = f", {self.num_classes} classes" if self.num_classes else ""
        return f"{len(self.x_train)} train / {n_val} val / {n_test} test, input {self.input_shape}{classes}"
