"""The model-ready data set every command trains and evaluates on."""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlrun.data.splits import VALIDATION_ON_TEST

ARRAYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


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
    splits: dict[str, dict[str, Any]] = field(default_factory=dict)  # size and origin of each split
    crc32: dict[str, int] = field(default_factory=dict)  # known CRC-32 of arrays (from the data cache)
    feature_stats: dict[str, Any] | None = None  # a table's columns, categories and scaling (data/features.py)
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def has_test(self) -> bool:
        """True when there is a test split (else final metrics are measured on the training data)."""
        return self.x_test is not None and self.y_test is not None

    @property
    def val_is_test(self) -> bool:
        """True when the validation split is the test split itself (`data.validation: test`)."""
        return self.x_val is not None and self.x_val is self.x_test

    def eval_split(self) -> tuple[np.ndarray, np.ndarray]:
        """The arrays final metrics are measured on: the test split, else the training data."""
        if self.x_test is not None and self.y_test is not None:
            return self.x_test, self.y_test
        return self.x_train, self.y_train

    def validation(self) -> str:
        """summary.json's `validation`: `test split`, `held out from training`, or `none`."""
        if self.val_is_test:
            return VALIDATION_ON_TEST
        return "held out from training" if self.x_val is not None else "none"

    def validation_warning(self) -> str | None:
        """What to tell the user once when validation runs on the test split (None otherwise)."""
        if not self.val_is_test:
            return None
        return ("validating on the test split (data.validation: test): early stopping, restore_best_weights and "
                "sweep ranking choose on it, so its test numbers are optimistic. Hold out validation data from "
                "training instead with data.validation: 0.1")

    def summary_fields(self) -> dict[str, Any]:
        """What a run's summary records about its data: sizes, the splits and their origins, the cache, and
        for classification the examples of each class in each split (`class_counts`: what chance is)."""
        counts = {"class_counts": self.class_counts()} if self.num_classes is not None else {}
        return {"data": self.describe(), "splits": self.splits, "validation": self.validation(),
                "data_cache": self.cache, "data_fingerprint": self.fingerprint(), **counts}

    def class_counts(self) -> dict[str, list[int]]:
        """{train|validation|test: examples of each class, in label order} for the splits there are."""
        labels = {"train": self.y_train, "validation": self.y_val, "test": self.y_test}
        return {split: np.bincount(y.reshape(-1).astype(np.int64), minlength=self.num_classes or 0).tolist()
                for split, y in labels.items() if y is not None}

    def fingerprint(self) -> str:
        """A digest of every array (dtype, shape, CRC-32): equal for the same prepared data, different
        when any example, label or split changed. Computed once (the data cache supplies the CRCs)."""
        if self._fingerprint is None:
            parts: list[Any] = []
            for name in ARRAYS:
                array = getattr(self, name)
                if array is None:
                    continue
                if name in ("x_val", "y_val") and self.val_is_test:
                    parts.append([name, "test"])
                    continue
                crc = self.crc32.get(name)
                if crc is None:
                    crc = zlib.crc32(np.ascontiguousarray(array))
                parts.append([name, array.dtype.str, list(array.shape), crc])
            self._fingerprint = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]
        return self._fingerprint

    def describe(self) -> str:
        """One line: sizes and shape (`2700 train / 300 val / 600 test, input (28, 28, 1), 10 classes`)."""
        n_test = 0 if self.x_test is None else len(self.x_test)
        test = f"{n_test} test" if self.x_test is not None else "no test"
        if self.val_is_test:
            sizes = f"{len(self.x_train)} train / {test} (also the validation split)"
        else:
            val = f"{len(self.x_val)} val" if self.x_val is not None else "no validation"
            sizes = f"{len(self.x_train)} train / {val} / {test}"
        classes = f", {self.num_classes} classes" if self.num_classes else ""
        return f"{sizes}, input {self.input_shape}{classes}"
