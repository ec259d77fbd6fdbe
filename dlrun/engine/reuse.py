"""Compiled models kept across the trials of a sweep in one process.

Most of a short trial's fixed cost is not training: Keras builds the metrics symbolically and
traces the training and validation steps on the first batch (0.3-0.6 s for an MLP on a CPU, more
than ten epochs of 500 images). Trials of one sweep usually differ only in the learning rate and
the L2 lambda, which Keras would bake into the traced graph as constants. Here the learning rate
is the optimizer's own variable, and each L2 penalty reads a variable, so one compiled model can
train every such trial:

- the trial's model is built from its seed exactly as a fresh run builds it (`seeded_model`, the
  same random draws, so the same initial weights), with its optimizer's state;
- those values (weights, random-generator states, optimizer step, learning rate and slots) are
  copied into the kept model, and its penalties set to the trial's lambdas;
- the kept model then trains with its traced functions: same values, same operations, so the
  trial's numbers are exactly those of a fresh run (tests/test_model_reuse.py compares them).

A model is only kept for what it can train exactly: the key is the whole config but the name, the
seed, the sweep section, a constant learning rate and the lambda's value (its being 0 or not changes
the graph). Models with a base, a distribution strategy or a resumed checkpoint are never reused.
"""

from __future__ import annotations

import contextlib
import json
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from dlrun.config import LoadedConfig
from dlrun.config.schema import ExperimentConfig
from dlrun.data import Dataset
from dlrun.engine import backend

MODELS_KEPT = 2
"""Architectures kept per process (least recently used dropped): a sweep of one architecture needs one."""

_PENALTY = "_dlrun_penalty"  # on a kept model: (its lambda variable, its L2 regularizers, the lambda as configured)


def reuse_key(cfg: ExperimentConfig, data: Dataset) -> str | None:
    """What two trials must share to train on one compiled model (None: this one never reuses)."""
    if cfg.model.base is not None or cfg.train.distribute is not None or cfg.transfer is not None:
        return None
    spec = cfg.model_dump(mode="json", by_alias=True, exclude={"name", "seed", "sweep"})
    if cfg.optimizer.decay == 0 and cfg.optimizer.schedule is None:
        spec["optimizer"].pop("lr")  # a constant: the optimizer's learning-rate variable
    spec["model"]["l2"] = cfg.model.l2 > 0  # its value: the penalties' variables
    spec["inputs"] = [list(data.input_shape), str(data.x_train.dtype), str(data.y_train.dtype)]
    return json.dumps(spec, sort_keys=True)


class TrialModels:
    """The compiled models of one process' trials, by `reuse_key` (`kept` 0: none, every trial builds its own)."""

    def __init__(self, kept: int = MODELS_KEPT):
        self._kept = kept
        self._models: OrderedDict[str, Any] = OrderedDict()
        self.reused = 0

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
        else:  # the kept model's instantiated functions stay (backend.kernels_kept)
            with backend.kernels_kept():
                fresh = seeded_model(lc, data)
        if kept is not None and _take_state(kept, fresh, lc.config.model.l2):
            self._models.move_to_end(key)
            self.reused += 1
            return kept
        if key is not None:
            _variable_penalty(fresh, lc.config.model.l2)
            self._models[key] = fresh
            self._models.move_to_end(key)
            while len(self._models) > self._kept:
                self._models.popitem(last=False)
        return fresh


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


def _take_state(kept: Any, fresh: Any, l2: float) -> bool:
    """Copy `fresh`'s initial state into `kept`, and set its lambda to `l2` (False, copying nothing, when the
    two do not match)."""
    fresh.optimizer.build(fresh.trainable_variables)  # as fit would: its slots at their initial values
    if not kept.optimizer.built:
        kept.optimizer.build(kept.trainable_variables)
    targets, sources = [*kept.variables, *kept.optimizer.variables], [*fresh.variables, *fresh.optimizer.variables]
    variable, regularizers, _ = getattr(kept, _PENALTY)
    if len(targets) != len(sources) or len(regularizers) != len(_regularizers(fresh)):
        return False
    pairs = list(zip(targets, sources, strict=True))
    if any(tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype for a, b in pairs):
        return False
    for target, source in pairs:
        target.assign(source.value)
    variable.assign(l2)
    setattr(kept, _PENALTY, (variable, regularizers, l2))
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
