"""Training steps per call into TensorFlow (`train.steps_per_execution`), exact for any value.

Keras runs `steps_per_epoch` in calls of `steps_per_execution` steps and pads the last call of an
epoch to a full one: at 8 steps per call an epoch of 250 steps trains on 256 batches, 6 of them
borrowed from the next epoch, so the metrics and weights depend on the setting. Here the last call
of an epoch runs only the steps left (250 = 31 x 8 + 2): every setting trains on exactly the
batches of `steps_per_execution: 1`, in the same order, with identical results on CPU.

`auto` picks the value (see `choose`). Nothing dlrun watches needs a finer grain than a call:
per-epoch checkpoints and metrics come from the epoch's end; a NaN loss stays NaN in the epoch's
running mean, so divergence is still caught in the epoch it happens; the live progress bar and a
stop request (Ctrl-C) are seen once per call, which `auto` keeps short.

The train function is Keras' private hook (see keras_hooks.py): where a Keras release changed it, every
setting runs one step per call, Keras' own exact loop.
"""

from __future__ import annotations

import math
from typing import Any

from dlrun.engine import backend, keras_hooks
from dlrun.weights.walk import leaf_layers

AUTO_MAX = 32
"""`auto` never runs more steps per call: beyond ~32 the per-call cost (under a millisecond on a
CPU) is a few percent of the steps it covers and nothing more is gained."""

AUTO_FLOPS_PER_CALL = 2.5e9
"""`auto` keeps a call's arithmetic under this, about a quarter of a second at the ~10 GFLOP/s a
2-core CPU reaches on small layers: the progress bar moves and Ctrl-C is answered that promptly.
Models that heavy per step gain nothing from longer calls anyway."""


def kernel_macs(layer: Any) -> list[tuple[int, bool]]:
    """(multiply-adds per example, trainable) of each kernel of `layer`: a kernel's size times the
    positions it is applied at (1 for a dense layer on vectors, height x width of a convolution's
    output). Covers dense, convolution, depthwise and separable layers; others count as none."""
    try:
        positions = math.prod(int(d) for d in layer.output.shape[1:-1])
    except (AttributeError, ValueError, TypeError):
        return []
    return [(math.prod(int(d) for d in w.shape) * positions, bool(layer.trainable and w.trainable))
            for w in layer.weights if len(w.shape) >= 2 and w.name.split("/")[-1].endswith("kernel")]


def flops_per_example(model: Any) -> tuple[float, float]:
    """(training, inference) floating-point operations per example of `model`'s kernels.

    Inference is 2 per multiply-add. A training step adds the gradient of each trainable kernel
    (2 more) and the gradient flowing back into each kernel layer that has a trainable layer
    before it (2 more): the first layer of an MLP costs 4 per multiply-add, the others 6.
    Biases, activations, pooling and normalisation are left out (a few percent in these models).
    """
    forward = backward = 0.0
    upstream_trainable = False
    for leaf in leaf_layers(model):
        kernels = kernel_macs(leaf.layer)
        for macs, trainable in kernels:
            forward += 2 * macs
            backward += 2 * macs * (int(trainable) + int(upstream_trainable))
        upstream_trainable = upstream_trainable or any(t for _, t in kernels)
    return forward + backward, forward


def choose(setting: int | str, steps_per_epoch: int, flops_per_step: float) -> int:
    """The steps per call for a setting: an integer as given (a call never spans epochs, so at most
    `steps_per_epoch`); `auto`: as many as fit `AUTO_FLOPS_PER_CALL`, at most `AUTO_MAX`."""
    if setting != "auto":
        return max(1, min(int(setting), steps_per_epoch))
    by_arithmetic = int(AUTO_FLOPS_PER_CALL // max(flops_per_step, 1.0))
    return max(1, min(AUTO_MAX, by_arithmetic, steps_per_epoch))


def steps_per_execution(model: Any, setting: int | str, n_train: int, batch_size: int) -> int:
    """`choose` for this model and training set (the value a run records in summary.json); 1 when this
    Keras lacks the hooks several steps per call need (keras_hooks.train_function_hook warns once)."""
    steps = max(1, math.ceil(n_train / batch_size))
    chosen = choose(setting, steps, flops_per_example(model)[0] * min(batch_size, n_train))
    return chosen if chosen == 1 or keras_hooks.train_function_hook() else 1


def execution_line(setting: int | str, steps: int, n_train: int, batch_size: int) -> str:
    """`steps_per_execution: 32 (auto; 250 steps per epoch)`: what a run prints before training."""
    how = "auto; " if setting == "auto" else ""
    return f"steps_per_execution: {steps} ({how}{math.ceil(n_train / batch_size)} steps per epoch)"


def exact_executions(model: Any, steps_per_epoch: int, steps: int) -> Any | None:
    """Make `model.fit` run `steps` training steps per call, the last call of each epoch only the
    rest. Returns the callback that `fit` must get (None for 1 step: Keras' own loop is exact).

    Keras calls `train_function` once per `steps` steps (ceil(steps_per_epoch / steps) times an
    epoch), right after `on_train_batch_begin(first step of the call)`: the callback keeps that
    step, and the function runs min(steps, steps_per_epoch - it) steps in one TensorFlow loop.
    Validation and evaluation then also run `steps` batches per call (they stop at their data's end).
    """
    if steps > 1 and not keras_hooks.train_function_hook():
        steps = 1  # Keras' own loop, exact at one step per call
    if model.steps_per_execution != steps:
        model.steps_per_execution = steps
        model.train_function = model.test_function = model.predict_function = None  # traced for the old value
    if steps == 1:
        return None
    from dlrun.engine.callbacks import StepCounter

    callback = StepCounter(steps_per_epoch, steps)
    if model.train_function is None:  # else it is this function, for these steps (reset above or by compile)
        model.train_function = _train_function(model)  # traced once per model (engine/reuse.py keeps models)
    model._dlrun_counter = callback  # the fit about to run: its counter decides each call's steps
    return callback


def _train_function(model: Any) -> Any:
    """Keras' train step, `model._dlrun_counter.due()` times per call, in one traced TensorFlow loop (the
    count is a tensor argument, so a short last call, and the next fit, reuse the same graph)."""
    tf = backend.tf()
    strategy = model.distribute_strategy

    distributed = getattr(model, "_distribute_strategy", None) is not None  # train.distribute

    @tf.autograph.experimental.do_not_convert
    def one_step(data: Any) -> Any:
        outputs = strategy.run(model.train_step, args=(data,))
        if distributed:  # one value per replica -> the logs Keras' own step function reports
            from keras.src.backend.tensorflow.trainer import reduce_per_replica

            outputs = reduce_per_replica(outputs, strategy, reduction="auto")
        return outputs

    one_step = tf.function(one_step, reduce_retracing=True, jit_compile=model.jit_compile)

    @tf.autograph.experimental.do_not_convert
    def run_steps(iterator: Any, count: Any) -> Any:
        outputs = one_step(iterator.get_next())
        _, outputs = tf.while_loop(lambda i, _: i < count, lambda i, _: (i + 1, one_step(iterator.get_next())),
                                   [tf.constant(1), outputs])
        return outputs

    run_steps = tf.function(run_steps, reduce_retracing=True)

    def train_function(iterator: Any) -> Any:
        return run_steps(iterator, tf.constant(model._dlrun_counter.due()))

    return train_function
