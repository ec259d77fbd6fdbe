"""Build and compile the Keras model a config describes. Keras comes from `backend` only."""

from __future__ import annotations

import contextlib
import os
import weakref
from typing import Any

from dlrun.config import LoadedConfig
from dlrun.config.layers import L2_TYPES, LAYER_TYPES, LayerArgs, layer_names
from dlrun.config.outputs import from_logits, is_binary_output
from dlrun.config.schema import ExperimentConfig, OptimizerConfig
from dlrun.engine import backend
from dlrun.metrics import task_metric


def _keras_kwargs(args: LayerArgs, l2: float, regularize: bool) -> dict[str, Any]:
    kwargs = args.model_dump(exclude={"name"}, exclude_none=True)
    if regularize and l2 > 0:
        kwargs["kernel_regularizer"] = backend.keras().regularizers.L2(l2)
    return kwargs


def make_layer(cfg: ExperimentConfig, index: int, name: str, mixed: bool | None = None,
               output: bool | None = None) -> Any:
    """A fresh keras layer for `model.layers[index]` (L2 where configured).

    `mixed` (default: the config's train.mixed_precision) computes in float16, except the `output`
    layer (default: the last one), which stays float32 for a numerically stable softmax and loss, as
    the Keras mixed-precision guide advises. A base built from another run's layers passes the
    target's setting and output=False, so the base follows the model it is part of.
    """
    keras = backend.keras()
    item, last = cfg.model.layers[index], index == len(cfg.model.layers) - 1
    regularize = item.type in L2_TYPES[cfg.model.l2_layers] or (last and item.type == "dense")
    kwargs = _keras_kwargs(item.args, cfg.model.l2, regularize)
    # Mixed precision is set per layer, not with keras' global policy, which would leak into every
    # model built later in the process (the next sweep trial).
    if cfg.train.mixed_precision if mixed is None else mixed:
        kwargs["dtype"] = "float32" if (last if output is None else output) else "mixed_float16"
    return getattr(keras.layers, LAYER_TYPES[item.type].keras_class)(name=name, **kwargs)


def build_model(lc: LoadedConfig, input_shape: tuple[int, ...], name: str | None = None, base: Any = None) -> Any:
    """A compiled keras Sequential model for the config. Raises ConfigError when a layer cannot
    be built for this input (e.g. images too small for the convolutions).

    `base` (a built `model.base`, see base_model.build_with_base) becomes the first layer and
    `model.layers` go on top of it (in float32 under train.mixed_precision).
    """
    keras = backend.keras()
    cfg = lc.config
    model = keras.Sequential(name=name or "sequential")
    model.add(keras.Input(shape=input_shape))
    if base is not None:
        model.add(base)
    for i, (item, layer_name) in enumerate(zip(cfg.model.layers, layer_names(cfg.model.layers), strict=True)):
        shape = model.output_shape if len(model.layers) else input_shape  # before add: a failed add leaves
        try:                                                              # the model without an output shape
            model.add(make_layer(cfg, i, layer_name))
        except (ValueError, TypeError) as exc:
            reason = str(exc).splitlines()[0].rstrip(".")
            raise lc.error(f"model.layers.{i}", f"{item.type} cannot take input of shape {shape}: {reason}. "
                           "Use larger images (data.image_size), fewer pooling layers, or padding: same") from None
    check_head(lc, model, base)
    compile_model(model, cfg)
    return model


def check_head(lc: LoadedConfig, model: Any, base: Any = None) -> None:
    """The model must end in (batch, outputs): dense layers over 4-D features (a base that ends
    before its flatten) act per position and would only fail inside training. ConfigError with the fix."""
    shape = tuple(model.output_shape)
    if len(shape) == 2:
        return
    items = lc.config.model.layers
    first_dense = next((i for i, item in enumerate(items) if item.type == "dense"), len(items) - 1)
    where = f"the base's output {tuple(base.output_shape)}" if base is not None else "the features"
    raise lc.error(f"model.layers.{first_dense}", f"the model's output is {shape}, not (batch, outputs): "
                   f"{where} is still {len(shape)}-D where the dense layers start. Add `- flatten: {{}}` or "
                   "`- global_avg_pool2d: {}` before the first dense layer")


def make_optimizer(opt: OptimizerConfig) -> Any:
    """A keras optimizer for the config section: its learning rate a float, or the schedule that
    `optimizer.decay` / `optimizer.schedule` describe (engine/schedules.py)."""
    from dlrun.engine.schedules import learning_rate

    keras = backend.keras()
    common: dict[str, Any] = {"learning_rate": learning_rate(opt)}
    if opt.clipnorm:
        common["clipnorm"] = opt.clipnorm
    if opt.weight_decay is not None:
        common["weight_decay"] = opt.weight_decay
    if opt.name == "sgd":
        return keras.optimizers.SGD(momentum=opt.momentum, nesterov=opt.nesterov, **common)
    if opt.name == "rmsprop":
        return keras.optimizers.RMSprop(momentum=opt.momentum, **common)
    classes = {"adagrad": "Adagrad", "adamw": "AdamW", "nadam": "Nadam", "adam": "Adam"}
    return getattr(keras.optimizers, classes[opt.name])(**common)


def loss_for(cfg: ExperimentConfig) -> Any:
    """The loss implied by the task and the output activation."""
    keras = backend.keras()
    if cfg.task == "regression":
        if cfg.loss == "sse":  # the gradient of the batch's sum of squared errors, as in the course's table fit;
            return keras.losses.MeanSquaredError(reduction="sum", name="sse")  # reported over the whole split
        return keras.losses.MeanSquaredError(name="mse")
    if is_binary_output(cfg):  # one sigmoid unit (or logit) on labels 0/1
        return keras.losses.BinaryCrossentropy(from_logits=from_logits(cfg))
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits(cfg))


def _task_metric(cfg: ExperimentConfig) -> Any:
    """The accuracy (or mae) metric; a one-unit output's accuracy thresholds its probability at 0.5
    (its logit at 0), under the same name, so every table, monitor and sweep reads it as accuracy."""
    if is_binary_output(cfg):
        return backend.keras().metrics.BinaryAccuracy(name="accuracy", threshold=0.0 if from_logits(cfg) else 0.5)
    return task_metric(cfg.task)


def compile_model(model: Any, cfg: ExperimentConfig, optimizer: OptimizerConfig | None = None) -> None:
    """(Re)compile `model` with the config's optimizer, loss and metrics."""
    metrics: list[Any] = [_task_metric(cfg)]
    if cfg.task == "regression" and cfg.loss == "sse":  # reported over the whole split (see engine/sse.py)
        from dlrun.engine.sse import SumSquaredError

        metrics.append(SumSquaredError())
    strategy = getattr(model, "_distribute_strategy", None)  # train.distribute: the optimizer's variables too
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        opt = make_optimizer(optimizer or cfg.optimizer)
        if cfg.train.mixed_precision:  # keras only wraps it itself under the global mixed policy
            opt = backend.keras().optimizers.LossScaleOptimizer(opt)
        # steps per call into TensorFlow are set per fit (engine.execution: they depend on the data size)
        model.compile(optimizer=opt, loss=loss_for(cfg), metrics=metrics, jit_compile=cfg.train.jit_compile)


_SUMMARIES: weakref.WeakKeyDictionary[Any, tuple[tuple[int, ...], str]] = weakref.WeakKeyDictionary()


SUMMARY_WIDTH = 110  # every column of Keras' table, Param # included, with room for long layer names


@contextlib.contextmanager
def _console_width(width: int) -> Any:
    """Keras renders the summary on a rich console as wide as the terminal (80 columns without one,
    which cuts the table's last column); rich takes COLUMNS when it is set."""
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = before


def summary_text(model: Any) -> str:
    """The layer summary keras prints, as text. Kept per model object while what it counts stays the
    same (the trials a kept model is lent to: Keras takes ~5 ms to render it)."""
    optimizer = getattr(model, "optimizer", None)
    key = (len(model.trainable_weights), len(model.non_trainable_weights),
           len(optimizer.variables) if optimizer is not None and optimizer.built else -1)
    kept = _SUMMARIES.get(model)
    if kept is not None and kept[0] == key:
        return kept[1]
    lines: list[str] = []
    with _console_width(SUMMARY_WIDTH):
        model.summary(print_fn=lambda line, *a, **k: lines.append(line), line_length=SUMMARY_WIDTH)
    text = "\n".join(lines) + "\n"
    _SUMMARIES[model] = key, text
    return text


def param_counts(model: Any) -> dict[str, int]:
    """Trainable and non-trainable parameter counts."""
    import numpy as np

    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    frozen = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"trainable": trainable, "non_trainable": frozen, "total": trainable + frozen}
