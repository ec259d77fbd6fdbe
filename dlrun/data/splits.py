"""The splits of a data set: test (the source's own, or held out with `test_split`), validation (held
out from the training data, or the test split itself with `validation: test`) and the training cap
(`limit`), each recorded with where it came from. Stratified and seeded; no TensorFlow here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlrun.config.schema import DataConfig
from dlrun.errors import DataError

VALIDATION_ON_TEST = "test split"  # summary.json's `validation` when data.validation is `test`


@dataclass
class Splits:
    """Model-ready arrays per split and, for the summary, each split's size and origin."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    origins: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def table(self) -> dict[str, dict[str, Any]]:
        """{train|validation|test: {examples, from}} for summary.json (0 examples: there is none)."""
        sizes = {"train": self.x_train, "validation": self.x_val, "test": self.x_test}
        return {name: {"examples": 0 if x is None else int(len(x)), "from": self.origins[name]}
                for name, x in sizes.items()}


def _how(classify: bool) -> str:
    return f"{'stratified by class' if classify else 'at random'}, seeded by data.seed"


def split_data(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray | None, y_test: np.ndarray | None,
               cfg: DataConfig, classify: bool, origin: str) -> Splits:
    """Hold out the test split (when the source has none), then validation, then cap the training data.

    A validation fraction that rounds to no example leaves no validation split (with a note); an empty
    test split or no training data left is a DataError.
    """
    s = Splits(x_train, y_train, x_test, y_test)
    train_from, held_out = "the source's training data", []
    if x_test is not None:
        s.origins["test"] = "the source's test split"
    elif cfg.test_split > 0:
        keep, held = stratified_split(s.y_train, cfg.test_split, seed=cfg.seed, stratify=classify)
        if not len(held):
            raise DataError(f"{origin}: the test split is empty (test_split: {cfg.test_split} of {len(s.y_train)} "
                            "examples holds out none); raise data.test_split, or use more data")
        (s.x_train, s.x_test), s.y_test, s.y_train = split_rows(s.x_train, keep, held), s.y_train[held], s.y_train[keep]
        s.origins["test"] = f"{cfg.test_split:g} of the source's examples held out ({_how(classify)})"
        train_from, held_out = "the source's examples", ["the test split"]
    else:
        s.origins["test"] = ("none: the source has no test split and data.test_split is 0, so final metrics are "
                             "measured on the training data (train_*)")
    _validation(s, cfg, classify)
    if s.x_val is not None and s.x_val is not s.x_test:
        held_out.append("the validation split")
    train_from += f" less {' and '.join(held_out)}" if held_out else ""
    if cfg.limit is not None and cfg.limit < len(s.x_train):
        train_from += f", capped at {cfg.limit} of {len(s.x_train)} (data.limit)"
        pick = np.sort(np.random.default_rng(cfg.seed).permutation(len(s.x_train))[: cfg.limit])
        s.x_train, s.y_train = s.x_train[pick], s.y_train[pick]
    if len(s.x_train) == 0:
        raise DataError(f"{origin}: no training examples left after the test/validation split")
    s.origins["train"] = train_from
    return s


def _validation(s: Splits, cfg: DataConfig, classify: bool) -> None:
    """The validation split: the test split itself, none, or a held-out fraction of the training data."""
    if cfg.validation == "test":
        s.x_val, s.y_val = s.x_test, s.y_test
        s.origins["validation"] = ("the test split itself (data.validation: test): early stopping and sweep "
                                   "ranking choose on it" if s.x_test is not None else "none: there is no test split")
        return
    fraction = float(cfg.validation)
    if fraction == 0:
        s.origins["validation"] = "none (data.validation: 0)"
        return
    keep, held = stratified_split(s.y_train, fraction, seed=cfg.seed + 1, stratify=classify)
    if not len(held) or not len(keep):
        s.origins["validation"] = f"none: {fraction:g} of {len(s.y_train)} training examples rounds to no example"
        s.notes.append(f"no validation split: data.validation {fraction:g} of {len(s.y_train)} training examples "
                       "holds out none (raise data.validation, or use more data)")
        return
    (s.x_train, s.x_val), s.y_val, s.y_train = split_rows(s.x_train, keep, held), s.y_train[held], s.y_train[keep]
    s.origins["validation"] = f"{fraction:g} of the training data held out ({_how(classify)})"


def split_rows(x: np.ndarray, keep: np.ndarray, held: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x[keep], x[held]) for sorted index arrays that together cover x's rows once, reusing x's memory.

    The held rows are copied out, the kept rows are moved to the front in place chunk by chunk (a
    kept row only moves towards the front, so no row is overwritten before it is read), and the
    held rows are written after them; both results are views of x. Peak extra memory is the held
    part instead of a second copy of everything. A read-only x is indexed the plain way.
    """
    if not x.flags.writeable or len(keep) + len(held) != len(x):
        return x[keep], x[held]
    held_rows = x[held]
    k = len(keep)
    step = max(1, (1 << 20) // max(1, x[:1].nbytes))  # rows per 1 MiB chunk: the only other temporary
    for start in range(0, k, step):
        idx = keep[start:start + step]
        if idx[0] != start or idx[-1] != start + len(idx) - 1:  # else this chunk is already in place
            x[start:start + len(idx)] = x[idx]
    x[k:] = held_rows
    return x[:k], x[k:]


def stratified_split(y: np.ndarray, fraction: float, seed: int,
                     stratify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with `fraction` of each class held out, seeded."""
    rng = np.random.default_rng(seed)
    if not stratify:
        order = rng.permutation(len(y))
        n_out = int(round(len(y) * fraction))
        return np.sort(order[n_out:]), np.sort(order[:n_out])
    classes, counts = np.unique(y, return_counts=True)
    total = int(round(len(y) * fraction))
    # largest-remainder allocation: each class keeps its share, and the total is exactly `total`
    exact = counts * fraction
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: total - int(take.sum())]:
        take[i] += 1
    held: list[np.ndarray] = []
    for cls, n_out in zip(classes, take, strict=True):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        held.append(idx[:n_out])
    out = np.sort(np.concatenate(held)) if held else np.array([], np.int64)
    keep = np.setdiff1d(np.arange(len(y)), out)
    return keep, out


