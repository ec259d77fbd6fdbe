"""Compiled models kept across the trials of a sweep in one process.

Most of a short trial's fixed cost is not training: Keras builds the metrics symbolically and
traces the training and validation steps on the first batch (0.3-0.6 s for an MLP on a CPU, more
than ten epochs of 500 images). Trials of one sweep usually differ only in the learning rate and
the L2 lambda, which Keras would bake into the traced graph as constants. Here the learning rate
is the optimizer's own variable, and each L2 penalty reads a variable, so one compiled model can
train every such trial:

- the trial's model is built from its seed exactly as a fresh run builds it (`seeded_model`, the
  same random draws, so the same initial weights), with its optimizer's state; a trial with the seed
  of an earlier one (a grid usually has one seed) takes the initial state that build produced instead
  of building it again, and Python's random state as the build left it (building draws layer seeds
  from it; nothing else it touches is random);
- those values (weights, random-generator states, optimizer step, learning rate and slots) are
  copied into the kept model, and its penalties set to the trial's lambdas;
- the kept model then trains with its traced functions: same values, same operations, so the
  trial's numbers are exactly those of a fresh run (tests/test_model_reuse.py compares them).

A model is only kept for what it can train exactly: the key is the whole config but the name, the
seed, the sweep section, a constant learning rate and the lambda's value (its being 0 or not changes
the graph). Models with a base, a distribution strategy or a resumed checkpoint are never reused, nor
any model where this Keras' penalties or learning rate do not work as keras_hooks.py checks.
"""

from __future__ import annotations

import contextlib
import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlrun.config import LoadedConfig
from dlrun.config.schema import ExperimentConfig
from dlrun.data import Dataset
from dlrun.engine import backend, keras_hooks

MODELS_KEPT = 8
"""Architectures kept per process (least recently used dropped): a sweep of one architecture needs one; a
pruned grid over a few sizes runs them in a shuffled order, so every size comes back every few trials."""

KEPT_BYTES = 256 * 2**20
"""The most bytes of variables (weights, optimizer slots) the kept models hold together; beyond, the least
recently used go, down to one: large models are kept one or two at a time, as the worker's memory allows."""

SEEDS_KEPT = 4
"""Initial states kept per kept model, by seed (least recently used dropped)."""

_PENALTY = "_dlrun_penalty"  # on a kept model: (its lambda variable, its L2 regularizers, the lambda as configured)


def reuse_key(cfg: ExperimentConfig, data: Dataset) -> str | None:
    """What two trials must share to train on one compiled model (None: this one never reuses)."""
    if cfg.model.base is not None or cfg.train.distribute is not None or cfg.transfer is not None:
        return None
    if not keras_hooks.variable_hooks():  # this Keras' penalties or learning rate differ: build every trial
        return None
    spec = cfg.model_dump(mode="json", by_alias=True, exclude={"name", "seed", "sweep"})
    if _constant_lr(cfg):
        spec["optimizer"].pop("lr")  # the optimizer's learning-rate variable
    spec["model"]["l2"] = cfg.model.l2 > 0  # its value: the penalties' variables
    spec["inputs"] = [list(data.input_shape), str(data.x_train.dtype), str(data.y_train.dtype)]
    return json.dumps(spec, sort_keys=True)


def _constant_lr(cfg: ExperimentConfig) -> bool:
    return cfg.optimizer.decay == 0 and cfg.optimizer.schedule is None


@dataclass
class _Initial:
    """A trial's initial state as `seeded_model` built it: the values of the model's and its optimizer's
    variables (in `_state_variables` order), the index of the learning-rate variable among them (None: the
    learning rate is in the reuse key), its number of L2 penalties, and Python's random state after the build."""

    values: list[np.ndarray]
    lr_index: int | None
    penalties: int
    python_random: Any


class TrialModels:
    """The compiled models of one process' trials, by `reuse_key` (`kept` 0: none, every trial builds its own)."""

    def __init__(self, kept: int = MODELS_KEPT):
        from dlrun.engine.pipeline import STREAMS_KEPT, Streams

        self._kept = kept
        self._bytes: dict[str, int] = {}  # each kept model's bytes of variables
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._initial: dict[str, OrderedDict[int, _Initial]] = {}
        self.streams = Streams(kept=STREAMS_KEPT if kept else 0)  # the training streams of this process' trials
        self.reused = 0  # trials that trained on a kept model
        self.rebuilt = 0  # of those, trials whose initial model was built (not taken from an earlier trial)

    def model(self, lc: LoadedConfig, data: Dataset, reusable: bool = True) -> Any:
        """A compiled model in exactly the state `seeded_model(lc, data)` returns: a kept one with the
        trial's initial values when one of the same key trained before, else that fresh model (kept
        for the next trial). `reusable` False (a trial about to load its checkpoint) always gets, and
        keeps, nothing. Clears the Keras session first unless a kept model is lent, so a trial that
        borrows none starts as in a new process. Raises ConfigError as `seeded_model` does."""
        from dlrun.engine.fit import seeded_model

        key = reuse_key(lc.config, data) if reusable and self._kept else None
        kept = self._models.get(key) if key is not None else None
        if kept is None:  # Keras' names and TensorFlow's caches start afresh; the last trial's model goes
            backend.clear_session()
            fresh = seeded_model(lc, data)
        else:
            assert key is not None
            seeds = self._initial.setdefault(key, OrderedDict())
            if lc.config.seed in seeds and _lend(kept, seeds[lc.config.seed], lc.config):
                seeds.move_to_end(lc.config.seed)
                return self._lent(key, kept)
            with backend.kernels_kept():  # the kept model's instantiated functions stay (see there)
                fresh = seeded_model(lc, data)
            initial = _initial_state(fresh, lc.config)
            if _lend(kept, initial, lc.config, seeded=True):
                if initial.lr_index is not None or not _constant_lr(lc.config):  # else its lr is this trial's
                    seeds[lc.config.seed] = initial
                while len(seeds) > SEEDS_KEPT:
                    seeds.popitem(last=False)
                self.rebuilt += 1
                return self._lent(key, kept)
        if key is not None:
            _variable_penalty(fresh, lc.config.model.l2)
            self._models[key] = fresh
            self._models.move_to_end(key)
            self._initial.pop(key, None)
            self._bytes[key] = _variable_bytes(fresh)
            while len(self._models) > self._kept or (len(self._models) > 1 and sum(self._bytes.values()) > KEPT_BYTES):
                dropped = self._models.popitem(last=False)[0]
                self._initial.pop(dropped, None)
                self._bytes.pop(dropped, None)
        return fresh

    def _lent(self, key: str, kept: Any) -> Any:
        self._models.move_to_end(key)
        self.reused += 1
        return kept


def _variable_bytes(model: Any) -> int:
    """Bytes of the model's variables and its optimizer's (slots, step, learning rate)."""
    import numpy as np

    optimizer = getattr(model, "optimizer", None)
    variables = [*model.variables, *(optimizer.variables if optimizer is not None else [])]
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)


def _regularizers(model: Any) -> list[Any]:
    from dlrun.weights.walk import leaf_layers

    keras = backend.keras()
    return [reg for leaf in leaf_layers(model) for name, reg in vars(leaf.layer).items()
            if name.endswith("_regularizer") and isinstance(reg, keras.regularizers.L2)]


def _variable_penalty(model: Any, l2: float) -> None:
    """Make the L2 penalties of `model` (all `model.l2`) read their lambda from one variable (before anything
    is traced): l2 * sum(x^2), the same float32 product as with the constant."""
    variable = backend.tf().Variable(l2, dtype="float32", trainable=False)
    regularizers = _regularizers(model)
    for reg in regularizers:
        reg.l2 = variable
    setattr(model, _PENALTY, (variable, regularizers, l2))


def _state_variables(model: Any) -> list[Any]:
    """Every variable a trial's initial state consists of: the model's (weights, batch-norm statistics,
    random-generator states) and its optimizer's, the optimizer built as fit would build it."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # its slots at their initial values
    return [*model.variables, *model.optimizer.variables]


def _initial_state(fresh: Any, cfg: ExperimentConfig) -> _Initial:
    """`fresh`'s state, just built by `seeded_model` for `cfg`, as a reusable record (see _Initial)."""
    import random

    variables = _state_variables(fresh)
    lr = getattr(fresh.optimizer, "_learning_rate", None)
    lr_index = next((i for i, v in enumerate(variables) if v is lr), None) if _constant_lr(cfg) else None
    return _Initial([v.numpy() for v in variables], lr_index, len(_regularizers(fresh)), random.getstate())


def _lend(kept: Any, initial: _Initial, cfg: ExperimentConfig, seeded: bool = False) -> bool:
    """Put `kept` in the trial's initial state: seeded as `seeded_model` seeds (Python's random state then as
    its build left it; `seeded`: `initial` was just built, and all of that is so already), `initial`'s values
    (the learning rate from `cfg` when constant), its lambdas those of `cfg`. False, changing nothing, when
    `initial` does not fit `kept`."""
    import random

    targets = _state_variables(kept)
    variable, regularizers, _ = getattr(kept, _PENALTY)
    if len(targets) != len(initial.values) or len(regularizers) != initial.penalties:
        return False
    if any(tuple(t.shape) != v.shape or t.dtype != v.dtype for t, v in zip(targets, initial.values, strict=True)):
        return False
    if not seeded:
        with backend.kernels_kept():
            backend.setup_for(cfg)
        random.setstate(initial.python_random)
    for index, (target, value) in enumerate(zip(targets, initial.values, strict=True)):
        target.assign(np.asarray(cfg.optimizer.lr, target.dtype) if index == initial.lr_index else value)
    variable.assign(cfg.model.l2)
    setattr(kept, _PENALTY, (variable, regularizers, cfg.model.l2))
    return True


@contextlib.contextmanager
def plain_penalties(model: Any) -> Iterator[None]:
    """While saving: each penalty of a kept model is its configured float again, so the saved config
    reads `l2: 0.001` (not the float32 variable's 0.0010000000474974513) and loads without dlrun."""
    variable, regularizers, l2 = getattr(model, _PENALTY, (None, [], None))
    for reg in regularizers:
        reg.l2 = l2
    try:
        yield
    finally:
        for reg in regularizers:
            reg.l2 = variable
