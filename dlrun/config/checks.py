"""Cross-field checks: small named functions, each returning the problems it found.

Static checks need only the config (run by `load_config`, so `dlrun validate` catches them).
Data checks also need the loaded data's shape and classes (run before any training).
"""

from __future__ import annotations

from collections.abc import Callable

from dlrun.config import checks_train, sizes
from dlrun.config.applications import APPLICATIONS, cached_imagenet, imagenet_message
from dlrun.config.layers import FLATTENING, IMAGE_TYPES
from dlrun.config.outputs import (
    KNOWN_CLASS_COUNTS,
    LOGITS,
    binary_label_problems,
    check_binary_output,
    check_class_names,
    check_probability_output,
)
from dlrun.config.schema import FILE_SOURCES
from dlrun.config.sourcemap import LoadedConfig
from dlrun.config.sweep_checks import check_sweep_metric, check_sweep_search, check_sweep_space
from dlrun.errors import ConfigError, Problem
from dlrun.metrics import epoch_metrics, needs_validation

Check = Callable[[LoadedConfig], list[Problem]]


def data_units_message(units: int, classes: int, lc: LoadedConfig) -> str:
    """Output units vs the classes found in the data; more classes than units means labels out of range."""
    data = lc.config.data
    if classes <= units:
        return units_message(units, classes, data.source)
    return (f"the output layer has {units} units (classes 0-{units - 1}) but the labels in "
            f"{data.path or data.source} go up to {classes - 1}: label out of range. Set units: {classes} "
            "if there are that many classes, or fix the labels")


def check_file_source_has_path(lc: LoadedConfig) -> list[Problem]:
    """File-based sources need `data.path`."""
    data = lc.config.data
    if data.source in FILE_SOURCES and not data.path:
        return [lc.source.problem("data.source", f"source '{data.source}' reads files; set data.path")]
    return []


def check_folder_has_image_size(lc: LoadedConfig) -> list[Problem]:
    """Folders hold images of any size, so a common `data.image_size` is needed."""
    data = lc.config.data
    if data.source == "folder" and data.image_size is None:
        return [lc.source.problem("data.image_size", "source 'folder' needs image_size, e.g. [64, 64]")]
    return []


def check_tabular_source(lc: LoadedConfig) -> list[Problem]:
    """`table` needs `data.table`; `csv` and `table` need `data.target`, a column of the table."""
    data, problems = lc.config.data, []
    if data.source == "table" and data.table is None:
        problems.append(lc.source.problem("data.table", "source 'table' needs data.table: {columns, rows}"))
    if data.source in ("table", "csv") and not data.target:
        problems.append(lc.source.problem("data.target", f"source '{data.source}' needs data.target (a column)"))
    if data.source == "table" and data.table and data.target and data.target not in data.table.columns:
        cols = ", ".join(data.table.columns)
        problems.append(lc.source.problem("data.target", f"'{data.target}' is not a column (columns: {cols})"))
    if data.table:
        width = len(data.table.columns)
        for i, row in enumerate(data.table.rows):
            if len(row) != width:
                problems.append(lc.source.problem(f"data.table.rows.{i}", f"has {len(row)} values, expected {width}"))
    return problems


def check_loss_fits_task(lc: LoadedConfig) -> list[Problem]:
    """Regression takes `sse`/`mse`; classification takes cross-entropy."""
    cfg = lc.config
    if cfg.task == "regression" and cfg.loss == "crossentropy":
        return [lc.source.problem("loss", "regression takes loss: sse or mse, not crossentropy")]
    if cfg.task == "classification" and cfg.loss in ("sse", "mse"):
        return [lc.source.problem("loss", f"classification uses crossentropy; '{cfg.loss}' needs task: regression")]
    return []


def check_output_layer(lc: LoadedConfig) -> list[Problem]:
    """The last layer must be dense; its units must match the classes when they are known up front."""
    layers = lc.config.model.layers
    last, key = layers[-1], f"model.layers.{len(layers) - 1}"
    if last.type != "dense":
        return [lc.source.problem(key, f"the last layer must be dense (the output), got {last.type}")]
    units = last.args.units  # type: ignore[attr-defined]
    if lc.config.task == "regression":
        if units != 1:
            message = f"regression predicts one value: units must be 1, got {units}"
            return [lc.source.problem(f"{key}.dense.units", message)]
        return []
    classes = KNOWN_CLASS_COUNTS.get(lc.config.data.source)
    if classes is not None and units != classes:
        return [lc.source.problem(f"{key}.dense.units", units_message(units, classes, lc.config.data.source))]
    return []


PROBABILITIES = ("softmax", "sigmoid")


def check_output_activation(lc: LoadedConfig) -> list[Problem]:
    """A classification output gives probabilities (softmax, sigmoid) or logits (no activation, linear);
    anything else (relu, tanh, ...) would be read as one of them and train on a wrong loss."""
    layers = lc.config.model.layers
    activation = getattr(layers[-1].args, "activation", None)
    if lc.config.task != "classification" or layers[-1].type != "dense" or activation in (*PROBABILITIES, *LOGITS):
        return []
    return [lc.source.problem(f"model.layers.{len(layers) - 1}.dense.activation",
                              f"a classification output must give probabilities (activation: softmax) or logits "
                              f"(no activation), not '{activation}'; use activation: softmax")]


def units_message(units: int, classes: int, source: str) -> str:
    """The message for an output layer whose units differ from the number of classes."""
    return f"the output layer has {units} units but '{source}' has {classes} classes; set units: {classes}"


def check_flatten_before_dense(lc: LoadedConfig) -> list[Problem]:
    """After convolution or pooling, a dense layer needs flatten (or global pooling) before it."""
    spatial = False
    for i, item in enumerate(lc.config.model.layers):
        if item.type in IMAGE_TYPES - FLATTENING:
            spatial = True
        elif item.type in FLATTENING:
            spatial = False
        elif item.type == "dense" and spatial:
            message = "dense after convolution/pooling needs a flatten layer before it"
            return [lc.source.problem(f"model.layers.{i}", message)]
    return []


def check_images_for_conv(lc: LoadedConfig) -> list[Problem]:
    """Convolution and pooling need image data, not a table."""
    if lc.config.data.source not in ("csv", "table"):
        return []
    for i, item in enumerate(lc.config.model.layers):
        if item.type in IMAGE_TYPES:
            message = f"{item.type} needs image data; '{lc.config.data.source}' is a table"
            return [lc.source.problem(f"model.layers.{i}", message)]
    return []


def check_unique_layer_names(lc: LoadedConfig) -> list[Problem]:
    """Explicit layer names must be unique."""
    seen: set[str] = set()
    problems = []
    for i, item in enumerate(lc.config.model.layers):
        name = item.args.name
        if name and name in seen:
            key = f"model.layers.{i}.{item.type}.name"
            problems.append(lc.source.problem(key, f"layer name '{name}' is used twice"))
        seen.add(name or "")
    return problems


def check_early_stopping_monitor(lc: LoadedConfig) -> list[Problem]:
    """Early stopping must watch a metric that training records (a validation one needs a validation split)."""
    es = lc.config.train.early_stopping
    allowed = epoch_metrics(lc.config.task)
    if es is not None and es.monitor not in allowed:
        message = f"'{es.monitor}' is not recorded; use one of {', '.join(allowed)}"
        return [lc.source.problem("train.early_stopping.monitor", message)]
    if es is not None and needs_validation(es.monitor) and lc.config.data.validation == 0:
        return [lc.source.problem("train.early_stopping.monitor", f"'{es.monitor}' needs a validation split but "
                                  "data.validation is 0; set data.validation (e.g. 0.1) or monitor the training loss")]
    return []


def check_base_model(lc: LoadedConfig) -> list[Problem]:
    """`model.base` names exactly one of `from` / `application`; `imagenet` weights need a local file."""
    base = lc.config.model.base
    if base is None:
        return []
    if (base.from_ is None) == (base.application is None):
        return [lc.source.problem("model.base", "set exactly one of model.base.from (a run directory or saved "
                                  f"model) and model.base.application ({', '.join(APPLICATIONS)})")]
    if base.from_ is not None and base.weights is not None:
        return [lc.source.problem("model.base.weights", "weights goes with application; a base from a saved "
                                  "model brings its own weights")]
    if base.application is not None and base.weights == "imagenet" and cached_imagenet(base.application) is None:
        return [lc.source.problem("model.base.weights", imagenet_message(base.application))]
    return []


def check_transfer_stages(lc: LoadedConfig) -> list[Problem]:
    """Stage names are unique (metrics rows and checkpoints are keyed by them)."""
    transfer, seen, problems = lc.config.transfer, set(), []
    for i, stage in enumerate(transfer.stages if transfer else []):
        if stage.name in seen:
            problems.append(lc.source.problem(f"transfer.stages.{i}.name", f"stage name '{stage.name}' is used twice"))
        seen.add(stage.name)
    return problems


STATIC_CHECKS: list[Check] = [
    check_file_source_has_path,
    check_folder_has_image_size,
    check_tabular_source,
    check_loss_fits_task,
    check_output_layer,
    check_output_activation,
    check_binary_output,
    check_probability_output,
    check_class_names,
    check_flatten_before_dense,
    check_images_for_conv,
    check_unique_layer_names,
    check_early_stopping_monitor,
    check_sweep_space,
    check_sweep_metric,
    check_sweep_search,
    check_base_model,
    check_transfer_stages,
    checks_train.check_schedule,
    checks_train.check_plateau,
    checks_train.check_feature_scaling,
    checks_train.check_augment_images,
    checks_train.check_saved_model_frozen,
    sizes.check_static_sizes,
]


def run_static_checks(lc: LoadedConfig, checks: list[Check] | None = None) -> None:
    """Run every static check; raise one ConfigError listing all problems."""
    problems = [p for check in (checks or STATIC_CHECKS) for p in check(lc)]
    if problems:
        raise ConfigError(problems)


def label_problems(lc: LoadedConfig, num_classes: int | None) -> list[Problem]:
    """A classification's label range (`num_classes`: the largest label + 1) against the output layer:
    at least two classes, one unit a class (or one sigmoid unit on labels 0/1). Used by train on the
    loaded labels and by validate on labels read cheaply (data/peek.py)."""
    layers = lc.config.model.layers
    if lc.config.task != "classification" or num_classes is None or layers[-1].type != "dense":
        return []
    if num_classes < 2:
        data = lc.config.data
        return [lc.source.problem("data", f"the labels in {data.path or data.source} hold one class only; "
                                  "classification needs at least two (or use task: regression)")]
    units = layers[-1].args.units  # type: ignore[attr-defined]
    if units == 1:
        return binary_label_problems(lc, num_classes)
    if units != num_classes:
        return [lc.source.problem(f"model.layers.{len(layers) - 1}.dense.units",
                                  data_units_message(units, num_classes, lc))]
    return []


def check_against_data(lc: LoadedConfig, input_shape: tuple[int, ...], num_classes: int | None,
                       n_train: int | None = None) -> None:
    """Checks that need the loaded data: output units vs classes, image layers vs flat input, and (given
    the number of training examples) that training fits the memory budget."""
    # the output's probabilities also for a config that skipped the static checks
    problems = check_probability_output(lc) + label_problems(lc, num_classes)
    layers = lc.config.model.layers
    if len(input_shape) != 3:
        for i, item in enumerate(layers):
            if item.type in IMAGE_TYPES:
                problems.append(lc.source.problem(
                    f"model.layers.{i}",
                    f"{item.type} needs images (height, width, channels) but the data is flat {input_shape}; "
                    "use dense layers, or an image source"))
                break
    elif lc.config.model.base is None:
        for i, item in enumerate(layers):
            if item.type in FLATTENING or item.type in IMAGE_TYPES:
                break
            if item.type == "dense":
                problems.append(lc.source.problem(
                    f"model.layers.{i}", f"dense on images {input_shape} needs a flatten layer before it"))
                break
    if not problems and n_train is not None:
        problems = sizes.check_model_fits(lc, input_shape, n_train)
    if problems:
        raise ConfigError(problems)
