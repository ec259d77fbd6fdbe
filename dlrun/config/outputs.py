"""The classification output: the one-unit binary output (the course's sigmoid neuron), what it is and what
it needs, and which outputs give class probabilities."""

from __future__ import annotations

from dlrun.config.schema import ExperimentConfig
from dlrun.config.sourcemap import LoadedConfig
from dlrun.errors import Problem

KNOWN_CLASS_COUNTS = {"synthetic_digits": 10, "mnist": 10, "fashion_mnist": 10}


LOGITS = (None, "linear")  # output activations whose values are logits, not probabilities


def from_logits(cfg: ExperimentConfig) -> bool:
    """Whether the output layer gives logits (no activation, or linear): the loss and the predictions
    apply the sigmoid or softmax themselves."""
    return getattr(cfg.model.layers[-1].args, "activation", None) in LOGITS


def is_binary_output(cfg: ExperimentConfig) -> bool:
    """True for the course's binary classifier: one output unit (sigmoid, or a logit) on labels 0/1,
    trained with binary cross-entropy."""
    last = cfg.model.layers[-1]
    return cfg.task == "classification" and last.type == "dense" and last.args.units == 1  # type: ignore[attr-defined]


def check_binary_output(lc: LoadedConfig) -> list[Problem]:
    """One output unit gives one probability: sigmoid (or a logit), never softmax (always 1.0)."""
    layers = lc.config.model.layers
    if is_binary_output(lc.config) and getattr(layers[-1].args, "activation", None) == "softmax":
        return [lc.source.problem(f"model.layers.{len(layers) - 1}.dense.activation",
                                  "softmax over one unit is always 1.0; a one-unit binary output takes "
                                  "activation: sigmoid (labels 0/1), or use units: 2 with softmax")]
    return []


def check_probability_output(lc: LoadedConfig) -> list[Problem]:
    """Sigmoid over several units gives each class its own probability (a multi-label output): they do not
    sum to 1, so they are not the probabilities of one class per example that dlrun's cross-entropy,
    accuracy and `predict --top` read; one sigmoid unit (binary) is fine."""
    cfg, layers = lc.config, lc.config.model.layers
    last = layers[-1]
    if cfg.task != "classification" or last.type != "dense" or getattr(last.args, "activation", None) != "sigmoid":
        return []
    units = last.args.units  # type: ignore[attr-defined]
    if units == 1:
        return []
    return [lc.source.problem(f"model.layers.{len(layers) - 1}.dense.activation",
                              f"dlrun trains single-label classification (one class per example, cross-entropy "
                              f"over the classes), but sigmoid over {units} units scores each class on its own: "
                              f"the {units} outputs do not sum to 1 and are no class probabilities; use "
                              "activation: softmax (or units: 1 with sigmoid for two classes)")]


def binary_label_problems(lc: LoadedConfig, num_classes: int) -> list[Problem]:
    """A one-unit output learns labels 0 and 1 only."""
    if num_classes == 2:
        return []
    layers, data = lc.config.model.layers, lc.config.data
    return [lc.source.problem(f"model.layers.{len(layers) - 1}.dense.units",
                              f"a one-unit (sigmoid) output takes labels 0 and 1, but the labels in "
                              f"{data.path or data.source} go up to {num_classes - 1}; relabel the two classes as "
                              f"0/1, or set units: {num_classes} with activation: softmax")]


def check_class_names(lc: LoadedConfig) -> list[Problem]:
    """`data.class_names` names classes: a classification's, one per class where the source's count is known."""
    cfg = lc.config
    given = cfg.data.class_names
    if given is None:
        return []
    if cfg.task != "classification":
        return [lc.source.problem("data.class_names", "class names need task: classification; a regression "
                                  "predicts a number")]
    known = KNOWN_CLASS_COUNTS.get(cfg.data.source)
    if known is not None and len(given) != known:
        return [lc.source.problem("data.class_names", f"'{cfg.data.source}' has {known} classes but "
                                  f"{len(given)} names are given; list one name per class, in label order")]
    return []
