"""The Keras internals dlrun reaches past the public API for speed, checked once per process before use.

Two speed-ups lean on them:

- exact steps per call (engine/execution.py) replaces `model.train_function`: it relies on Keras' fit
  keeping a train function that is already set, calling it once per `steps_per_execution` steps right
  after `on_train_batch_begin(first step of the call)`, on `model._distribute_strategy`, and on the
  private `keras.src.backend.tensorflow.trainer.reduce_per_replica(values, strategy, reduction)`;
- one compiled model for a sweep's trials (engine/reuse.py) swaps each L2 regulariser's `l2` float for a
  variable (its penalty must read `l2` when called) and assigns the optimizer's `_learning_rate` variable
  (what `optimizer.learning_rate` reads).

Each is probed by what it does (a throwaway model with explicit names and zero initial weights, Python's
and NumPy's random states put back: nothing a run draws or names changes). If a Keras release changes one,
dlrun warns once and uses Keras' own way instead: one step per call, or a model built per trial. The
numbers stay exactly those of Keras' fit; only the speed-up is lost. pyproject.toml bounds keras to the
releases tested.
"""

from __future__ import annotations

import functools
import inspect
import random
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from dlrun.engine import backend


class KerasInternalsWarning(UserWarning):
    """A Keras internal dlrun uses for speed is not as expected: dlrun falls back to Keras' own code."""


@functools.cache
def train_function_hook() -> bool:
    """Whether execution.py may run several training steps per call with its own train function."""
    return _checked("its train-function hook (exact steps per call)", "one training step per call",
                    _probe_train_function)


@functools.cache
def variable_hooks() -> bool:
    """Whether reuse.py may lend one compiled model to several trials (variable L2 lambda and learning rate)."""
    return _checked("its variable L2 lambda and learning rate (one compiled model for a sweep's trials)",
                    "a model built for every trial", _probe_variables)


def _checked(what: str, instead: str, probe: Callable[[], str | None]) -> bool:
    with _state_kept():
        try:
            problem = probe()
        except Exception as exc:  # any change of the internals probed, however it shows
            problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        version = getattr(backend.keras(), "__version__", "?")
        warnings.warn(f"Keras {version} changed what dlrun uses for {what}: {problem}. dlrun uses {instead} "
                      "instead: the same numbers as Keras' fit, only slower. Install the keras version "
                      "pyproject.toml names to get the speed back.", KerasInternalsWarning, stacklevel=3)
    return problem is None


@contextmanager
def _state_kept() -> Iterator[None]:
    """Python's and NumPy's random states as they were (a probe must not shift what a run draws)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _probe_model() -> object:
    keras = backend.keras()
    inputs = keras.Input((1,), name="dlrun_probe_input")
    outputs = keras.layers.Dense(1, kernel_initializer="zeros", name="dlrun_probe_dense")(inputs)
    model = keras.Model(inputs, outputs, name="dlrun_probe")
    model.compile(optimizer=keras.optimizers.SGD(name="dlrun_probe_sgd"), loss=keras.losses.MeanSquaredError())
    return model


def _probe_train_function() -> str | None:
    """A fit of 2 epochs of 5 steps at 2 steps per call must call a train function set beforehand with
    the calls' first steps 0, 2, 4 (as the StepCounter sees them), and take 2, 2 and 1 batches."""
    from keras.src.backend.tensorflow.trainer import reduce_per_replica

    from dlrun.engine.callbacks import StepCounter

    params = list(inspect.signature(reduce_per_replica).parameters)
    if params[:3] != ["values", "strategy", "reduction"]:
        return f"reduce_per_replica takes ({', '.join(params)}), not (values, strategy, reduction)"
    model = _probe_model()
    if not hasattr(model, "_distribute_strategy"):
        return "a model has no _distribute_strategy"
    counter, calls = StepCounter(5, 2), []

    def train_function(iterator: object) -> dict[str, float]:
        due = counter.due()
        calls.append((counter.begin, due))
        for _ in range(due):
            iterator.get_next()  # type: ignore[attr-defined]
        return {"loss": 0.0}

    tf = backend.tf()
    stream = tf.data.Dataset.from_tensor_slices((np.zeros((5, 1), "float32"), np.zeros((5, 1), "float32")))
    model.steps_per_execution = 2  # type: ignore[attr-defined]
    model.train_function = train_function  # type: ignore[attr-defined]
    model.fit(stream.batch(1).repeat(), epochs=2, steps_per_epoch=5, shuffle=False, verbose=0, callbacks=[counter])  # type: ignore[attr-defined]
    expected = [(0, 2), (2, 2), (4, 1)] * 2
    return None if calls == expected else f"fit called the train function as {calls}, not {expected}"


def _probe_variables() -> str | None:
    """An L2 penalty must follow a variable put in its `l2`; `optimizer.learning_rate` must read what is
    assigned to `optimizer._learning_rate`."""
    keras, tf = backend.keras(), backend.tf()
    reg, x = keras.regularizers.L2(0.5), tf.ones((2, 2))
    lam = tf.Variable(0.25, dtype="float32", trainable=False)
    reg.l2 = lam
    if float(reg(x)) != 1.0:  # 0.25 * 4
        return f"an L2 penalty with its l2 a variable of 0.25 gives {float(reg(x))}, not 1.0"
    lam.assign(0.5)
    if float(reg(x)) != 2.0:
        return "an L2 penalty does not follow the variable in its l2"
    optimizer = keras.optimizers.SGD(learning_rate=0.1, name="dlrun_probe_lr")
    optimizer._learning_rate.assign(0.25)
    if float(optimizer.learning_rate) != 0.25:
        return "optimizer.learning_rate does not read optimizer._learning_rate"
    return None
