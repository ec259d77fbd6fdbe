"""What a config will cost before it runs, without TensorFlow: the output shape and parameter count
of every layer, and from them the memory training needs, compared with the memory budget
(dlrun.limits). A config that cannot fit (units, filters, image_size, batch_size or n_train far too
large) is refused with the size it would need, located at the key that costs the most."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dlrun.config.sourcemap import LoadedConfig
from dlrun.errors import Problem
from dlrun.limits import MAX_EPOCHS, budget_hint, format_bytes, max_threads, memory_budget

FLOAT = 4  # bytes per float32 value
OPTIMIZER_SLOTS = {"sgd": 0, "adam": 2, "rmsprop": 1, "adagrad": 1}
EVAL_BATCH = 256  # evaluation batches hold at least this many examples (engine.pipeline.eval_batch_size)


@dataclass
class LayerCost:
    """One layer of the walk: its index in model.layers, output shape (per example) and parameters."""

    index: int
    type: str
    output: tuple[int, ...]
    params: int


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _window(size: int, window: int, stride: int, padding: str) -> int:
    return -(-size // stride) if padding == "same" else (size - window) // stride + 1


def _spatial(shape: tuple[int, ...], args: Any, window: tuple[int, int], channels: int) -> tuple[int, ...]:
    strides = _pair(args.strides) if args.strides is not None else window
    h, w = (_window(shape[i], window[i], strides[i], args.padding) for i in range(2))
    return h, w, channels


def _layer(kind: str, args: Any, shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """(output shape, parameter count) of one layer on an input of `shape` (per example)."""
    if kind == "dense":
        return (*shape[:-1], args.units), shape[-1] * args.units + (args.units if args.use_bias else 0)
    if kind in ("conv2d", "separable_conv2d"):
        kh, kw = _pair(args.kernel_size)
        cin, bias = shape[-1], args.filters if args.use_bias else 0
        weights = kh * kw * cin * args.filters if kind == "conv2d" else kh * kw * cin + cin * args.filters
        return _spatial(shape, args, (kh, kw), args.filters), weights + bias
    if kind in ("max_pool2d", "avg_pool2d"):
        return _spatial(shape, args, _pair(args.pool_size), shape[-1]), 0
    if kind == "flatten":
        return (math.prod(shape),), 0
    if kind == "global_avg_pool2d":
        return (shape[-1],), 0
    if kind == "batch_norm":
        return shape, 4 * shape[-1]
    return shape, 0  # dropout, activation


def walk(layers: Sequence[Any], input_shape: tuple[int, ...]) -> list[LayerCost]:
    """Every layer's output shape and parameters, in order; stops at a layer that cannot take its input
    (Keras reports that one when the model is built)."""
    shape, out = tuple(int(d) for d in input_shape), []
    for i, item in enumerate(layers):
        spatial = item.type in ("conv2d", "separable_conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d")
        if not shape or (spatial and len(shape) != 3):
            break
        shape, params = _layer(item.type, item.args, shape)
        if min(shape) <= 0:
            break
        out.append(LayerCost(i, item.type, shape, params))
    return out


def layer_bytes(lc: LoadedConfig, cost: LayerCost, n_train: int) -> tuple[int, int]:
    """(parameter bytes, activation bytes) one layer costs in training: its weights, gradients, optimizer
    slots and the checkpoint's copies; its output for a batch, kept for the backward pass (evaluation
    batches are bigger but run forward only)."""
    cfg = lc.config
    slots = OPTIMIZER_SLOTS.get(cfg.optimizer.name, 2) + (cfg.optimizer.momentum > 0)
    batch = max(2 * min(cfg.train.batch_size, n_train), min(max(cfg.train.batch_size, EVAL_BATCH), n_train))
    return FLOAT * cost.params * (4 + slots), FLOAT * math.prod(cost.output) * batch


def check_model_fits(lc: LoadedConfig, input_shape: tuple[int, ...], n_train: int) -> list[Problem]:
    """The model must fit the memory budget: else a problem at the layer that costs the most (its units
    or filters), with the parameters, the size of its outputs per batch and what training would need."""
    if lc.config.model.base is not None:
        return []  # the base's shapes are known only once it is built
    costs = walk(lc.config.model.layers, input_shape)
    parts = [layer_bytes(lc, c, n_train) for c in costs]
    total, budget = sum(p + a for p, a in parts), memory_budget()
    if total <= budget:
        return []
    i = max(range(len(costs)), key=lambda k: sum(parts[k]))
    big = costs[i]
    key = f"model.layers.{big.index}.{big.type}"
    arg = "units" if big.type == "dense" else "filters" if "conv" in big.type else ""
    params = sum(c.params for c in costs)
    return [lc.source.problem(f"{key}.{arg}" if arg else key, (
        f"training needs about {format_bytes(total)}, more than {budget_hint()}: the model has {params:,} "
        f"parameters ({big.params:,} in this layer), and this layer outputs {big.output} per example "
        f"({format_bytes(parts[i][1])} for a batch). Use fewer units or filters, or a smaller image_size or "
        "batch_size"))]


def check_static_sizes(lc: LoadedConfig) -> list[Problem]:
    """Sizes known from the config alone: synthetic digits to draw, one image of image_size, epochs."""
    cfg, problems, budget = lc.config, [], memory_budget()
    channels = 1 if cfg.data.color == "grayscale" else 3
    if cfg.data.image_size is not None:
        one = FLOAT * channels * math.prod(cfg.data.image_size)
        if one > budget:
            problems.append(lc.source.problem("data.image_size", f"one image of {cfg.data.image_size} needs "
                                              f"{format_bytes(one)}, more than {budget_hint()}"))
    if cfg.data.source == "synthetic_digits" and not problems:
        side = cfg.data.image_size[0] if cfg.data.image_size else 28
        total = (FLOAT + 1) * channels * side * side * (cfg.data.n_train + cfg.data.n_test)
        if total > budget:
            problems.append(lc.source.problem("data.n_train", f"{cfg.data.n_train + cfg.data.n_test:,} synthetic "
                                              f"digits of {side}x{side} need {format_bytes(total)}, more than "
                                              f"{budget_hint()}; draw fewer"))
    shape = known_input_shape(lc)
    if shape is not None and not problems:  # the model's size is known before any data is read
        problems += check_model_fits(lc, shape, cfg.data.n_train if cfg.data.source == "synthetic_digits"
                                     else cfg.train.batch_size)
    stages = [(f"transfer.stages.{i}.epochs", s.epochs) for i, s in enumerate(cfg.transfer.stages)] if cfg.transfer \
        else []
    for key, epochs in [("train.epochs", cfg.train.epochs), *stages]:
        if epochs > MAX_EPOCHS:
            problems.append(lc.source.problem(key, f"{epochs:,} epochs would never end, and every checkpoint keeps "
                                              f"one metrics row per epoch; at most {MAX_EPOCHS:,}"))
    cap, why = max_threads()
    if cfg.train.threads is not None and cfg.train.threads > cap:
        problems.append(lc.source.problem("train.threads", f"{cfg.train.threads:,} threads are too many: {why}; "
                                          f"set at most {cap:,} (or leave it unset: one per core)"))
    return problems


def known_input_shape(lc: LoadedConfig) -> tuple[int, ...] | None:
    """The input shape when the config alone fixes it (synthetic digits, the keras digit sets, any image
    source with image_size), so `dlrun validate` can size the model; None when only the data can say."""
    data = lc.config.data
    channels = 1 if data.color == "grayscale" else 3
    if data.image_size is not None and data.source not in ("npy", "npz", "h5", "csv", "table"):
        return (*data.image_size, channels)
    if data.source in ("synthetic_digits", "mnist", "fashion_mnist"):
        return (*(data.image_size or (28, 28)), channels)
    return None
