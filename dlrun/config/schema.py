"""The config contract: one pydantic model per YAML section. Key names are public; keep them.

Only shapes, types, ranges and descriptions live here; rules that relate several fields are in
`checks.py`. Every field's description is the text of the config reference (docs/reference.md) and of the
editor schema, so it is written for the person filling in the YAML.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from dlrun.config.applications import APPLICATIONS
from dlrun.config.augment_schema import AugmentConfig
from dlrun.config.layers import LayerItem
from dlrun.config.optimizer_schema import OptimizerConfig, OptimizerName, ReduceLROnPlateau
from dlrun.config.scale import DistributeConfig
from dlrun.config.section import Epochs, Float, FractionOrNone, Int, PosFloat, PosInt, Section, Seed
from dlrun.config.sweep_schema import SweepConfig
from dlrun.config.tracking_schema import TrackingConfig

DATA_SOURCES = ("mnist", "fashion_mnist", "synthetic_digits", "npy", "npz", "h5", "idx", "folder", "csv", "table")
FILE_SOURCES = frozenset({"npy", "npz", "h5", "idx", "folder", "csv"})
FreezeSpec = Literal["none", "all", "features"] | list[str]


class H5Keys(Section):
    """Names of the arrays in an h5 or npz file."""

    x_train: str = Field(default="X_train", description="Training images or features.")
    y_train: str = Field(default="y_train", description="Training labels.")
    x_test: str = Field(default="X_test", description="Test images (optional: else split with test_split).")
    y_test: str = Field(default="y_test", description="Test labels.")


class TableData(Section):
    """An inline table: `columns` names, `rows` of numbers; `data.target` names the label column."""

    columns: list[str] = Field(min_length=2, description="Column names, the target column included.")
    rows: list[list[Float]] = Field(min_length=2, description="Rows of numbers, one value per column.")


class DataConfig(Section):
    """Where the examples come from and how they are prepared and split."""

    source: Literal[DATA_SOURCES] = Field(  # type: ignore[valid-type]
        default="synthetic_digits", description="Where the data comes from (see Data sources).")
    path: str | None = Field(default=None, description="File or folder of a file-based source; for mnist and "
                             "fashion_mnist an optional local copy (mnist.npz-style file or idx folder).")
    x: str = Field(default="X.npy", description="npy source: the feature file, relative to path.")
    y: str = Field(default="Y.npy", description="npy source: the label file (integer or one-hot).")
    keys: H5Keys = Field(default_factory=H5Keys, description="h5/npz source: the names of the arrays.")
    image_size: tuple[PosInt, PosInt] | None = Field(
        default=None, description="[height, width]: resize with OpenCV (INTER_AREA) when images differ; "
        "required for folder.")
    color: Literal["grayscale", "rgb"] = Field(default="grayscale", description="Channels the images are converted to.")
    normalize: bool | Literal["standardize", "minmax"] = Field(
        default=True, description="Images: true scales pixels to [0, 1]. Tables (csv, table): standardize "
        "(per-feature z-score) or minmax (per-feature to [0, 1]), fitted on the training split only and stored "
        "in the run directory; true/false leave table features as they are.")
    categorical: list[str] = Field(default_factory=list, description="csv: string columns to one-hot encode "
                                   "(categories from the training split).")
    test_split: Float = Field(default=0.2, ge=0, lt=1, description="Fraction held out as the test split when "
                              "the source has none; stratified and seeded (0: no test split).")
    validation: Literal["test"] | FractionOrNone = Field(
        default=0.1, description="A fraction of the training data held out for validation (stratified, seeded; "
        "0: none), or test: validate on the test split (early stopping and sweeps then choose on it).")
    limit: PosInt | None = Field(default=None, description="Cap on the training examples (quick runs).")
    style: Literal["clean", "street"] = Field(default="clean", description="synthetic_digits: clean "
                                              "(MNIST-like) or street (house-number-like, harder).")
    n_train: PosInt = Field(default=2000, description="synthetic_digits: training images.")
    n_test: PosInt = Field(default=500, description="synthetic_digits: test images.")
    seed: Seed = Field(default=0, description="Data seed (synthetic images, splits), independent of the "
                      "training seed.")
    table: TableData | None = Field(default=None, description="table source: {columns: [...], rows: [[...]]}.")
    target: str | None = Field(default=None, description="csv/table: the label column.")
    download: bool = Field(default=False, description="mnist/fashion_mnist: allow a download when the file is "
                           "not cached (off: offline by default).")
    class_names: list[str] | None = Field(
        default=None, min_length=2, description="Names of the classes in label order (one per class), used by "
        "predict, evaluate and the confusion matrix; default: the folder names (folder), the ten Fashion-MNIST "
        "names (fashion_mnist), the digits (mnist, synthetic_digits), else the label numbers.")
    augment: AugmentConfig | None = Field(
        default=None, description="Images: random changes to every training batch, e.g. {flip: horizontal, "
        "rotation: 0.05, zoom: 0.1} (see Augmentation); validation, test, evaluate and predict see the images "
        "as they are.")


class BaseModelConfig(Section):
    """A frozen (or trainable) base under `model.layers`: a saved model, or a keras application."""

    from_: str | None = Field(default=None, alias="from", description="A run directory, .keras file or "
                              "full-model .h5 whose feature layers become the base.")
    application: Literal[tuple(APPLICATIONS)] | None = Field(  # type: ignore[valid-type]
        default=None, description="A Keras application as the base, built without its top.")
    weights: str | None = Field(default=None, description="application: a local weights file (imagenet "
                                "cannot be downloaded offline); none: random initialisation.")
    include_top: bool = Field(default=False, description="Keep the saved model's or application's top "
                              "(flatten/dense) layers.")
    trainable: bool = Field(default=False, description="Train the base too (default: frozen).")

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)


class ModelConfig(Section):
    """The architecture: layers in order, the L2 penalty, an optional base model."""

    layers: list[LayerItem] = Field(min_length=1, description="The layers in order, one-key mappings such as "
                                    "`- dense: {units: 10, activation: softmax}`.")
    l2: Float = Field(default=0.0, ge=0, description="lambda: L2 kernel penalty (lambda * sum(w^2)).")
    l2_layers: Literal["output", "dense", "all"] = Field(
        default="output", description="Which layers get the penalty: the output layer, every dense layer, or "
        "every dense and convolution layer.")
    base: BaseModelConfig | None = Field(default=None, description="A saved model or Keras application under "
                                         "the layers (see dlrun transfer).")


class EarlyStopping(Section):
    """Stop when a validation metric stops improving (Keras' EarlyStopping rule)."""

    monitor: str = Field(default="val_accuracy", description="The epoch metric to watch.")
    patience: Int = Field(default=2, ge=0, description="Epochs without improvement before stopping (0 stops "
                          "at the first epoch that does not improve, as in Keras).")
    min_delta: Float = Field(default=0.0, ge=0, description="The least change that counts as improvement.")
    mode: Literal["auto", "min", "max"] = Field(
        default="auto", description="auto: lower is better for losses and errors, higher for accuracy.")
    restore_best_weights: bool = Field(default=False, description="End with the weights of the best epoch.")


class TensorBoardConfig(Section):
    """TensorBoard event files: `true` (the default), `false`, or these settings."""

    enabled: bool = Field(default=True, description="Write RUN/tb: the per-epoch scalars (train, validation) "
                          "and the final metrics; `tensorboard: false` is short for enabled: false.")
    histograms: Int = Field(default=0, ge=0, description="Write a histogram of every weight every N epochs "
                            "(0: none).")
    profile_batch: PosInt | tuple[PosInt, PosInt] | None = Field(
        default=None, description="Profile this training batch, or the batches [first, last] (counted from 1 "
        "at the start of training); view with the tensorboard-plugin-profile package.")

    @model_validator(mode="before")
    @classmethod
    def _from_bool(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value

    @field_validator("profile_batch")
    @classmethod
    def _ordered(cls, value: Any) -> Any:
        if isinstance(value, tuple) and value[0] > value[1]:
            raise ValueError(f"[first, last] must not end before it starts (got {list(value)})")
        return value


class TrainConfig(Section):
    """How training runs."""

    epochs: Epochs = Field(default=10, description="Epochs to train (at most 100,000: every checkpoint holds "
                           "one metrics row per epoch).")
    batch_size: PosInt = Field(default=32, description="Examples per training step.")
    shuffle: bool = Field(default=True, description="Shuffle the training data every epoch (seeded by "
                          "seed and epoch).")
    early_stopping: EarlyStopping | None = Field(
        default=None, description="e.g. {monitor: val_accuracy, patience: 2, restore_best_weights: true}.")
    reduce_lr_on_plateau: ReduceLROnPlateau | None = Field(
        default=None, description="e.g. {monitor: val_loss, factor: 0.5, patience: 3, min_lr: 0.0001}.")
    threads: PosInt | None = Field(default=None, description="Cap TensorFlow's CPU threads.")
    mixed_precision: bool = Field(default=False, description="float16 compute with float32 weights (GPUs).")
    jit_compile: bool | Literal["auto"] = Field(
        default="auto", description="XLA: true | false | auto (Keras' default: on a GPU, never on CPU).")
    steps_per_execution: PosInt | Literal["auto"] = Field(
        default="auto", description="Training steps run per call into TensorFlow: auto (dlrun picks, up to 32, "
        "fewer for heavy steps; summary.json records it) or a number. Every value trains on the same batches "
        "with the same results; larger ones only cut per-step overhead.")
    tensorboard: TensorBoardConfig = Field(
        default_factory=TensorBoardConfig, description="TensorBoard event files in RUN/tb: true, false, or "
        "{histograms: N, profile_batch: B} for more.")
    distribute: DistributeConfig | None = Field(
        default=None, description="One model on several devices: {strategy: mirrored, devices: 2} (see Scaling out).")

    def tensorboard_settings(self) -> TensorBoardConfig | None:
        """What TensorBoard logging this run does (None: none)."""
        return self.tensorboard if self.tensorboard.enabled else None


class LastN(Section):
    """Unfreeze the last N frozen weight-bearing layers."""

    last: PosInt = Field(description="How many of the last frozen weight-bearing layers to unfreeze.")


class StageOptimizer(Section):
    """Optimizer settings a stage changes (the rest come from `optimizer:`)."""

    name: OptimizerName | None = Field(default=None, description="The stage's optimizer.")
    lr: PosFloat | None = Field(default=None, description="The stage's learning rate.")
    momentum: FractionOrNone | None = Field(default=None, description="The stage's momentum.")


class StageConfig(Section):
    """One transfer stage: which layers are frozen, how long it trains."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Stage name (metrics rows, checkpoints).")
    freeze: FreezeSpec = Field(default="features", description="none | all | features (everything before the "
                               "first dense layer) | a list of layer names or globs.")
    unfreeze: list[str] | LastN | None = Field(default=None, description="Layers to train despite freeze: "
                                               "names/globs, or {last: N}.")
    epochs: Epochs = Field(default=10, description="Epochs of this stage.")
    optimizer: StageOptimizer | None = Field(default=None, description="The stage's optimizer changes, e.g. "
                                             "{lr: 0.0001} for fine-tuning.")


class TransferConfig(Section):
    """`dlrun transfer`: where the weights come from and the stages that train."""

    from_: str | None = Field(default=None, alias="from", description="A run directory, .weights.h5, .keras "
                              "or legacy Keras-2 .h5 (or --from).")
    match: Literal["auto", "by_name"] = Field(default="auto", description="Pair layers by order (auto) or by "
                                              "name.")
    head: Literal["auto", "keep", "reinit"] = Field(
        default="auto", description="The output layer: re-initialise when the classes differ (auto), keep, "
        "or always reinit.")
    stages: list[StageConfig] = Field(default_factory=lambda: [StageConfig(name="feature_extraction")],
                                      description="The stages in order (default: one feature_extraction stage).")

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)


class ExperimentConfig(Section):
    """One experiment: the top level of a dlrun config file."""

    name: str = Field(default="experiment", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80,
                      description="Run name: letters, digits, _ - . (the run directory's name).")
    seed: Int = Field(default=0, ge=0, lt=2**31, description="Seeds Python, NumPy and TensorFlow (and op "
                      "determinism on a GPU).")
    task: Literal["classification", "regression"] = Field(
        default="classification", description="What the model predicts: a class (classification) or a number "
        "(regression).")
    loss: Literal["auto", "crossentropy", "sse", "mse"] = Field(
        default="auto", description="auto: cross-entropy for classification, mse for regression; sse is the "
        "course's sum of squared errors.")
    data: DataConfig = Field(default_factory=DataConfig, description="The data set.")
    model: ModelConfig = Field(description="The architecture.")
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig, description="The optimizer.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Training settings.")
    sweep: SweepConfig | None = Field(default=None, description="The parameter space of dlrun sweep.")
    transfer: TransferConfig | None = Field(default=None, description="The stages of dlrun transfer.")
    tracking: TrackingConfig | None = Field(default=None, description="Also record runs in a tracker: "
                                            "{mlflow: {uri: ..., experiment: ...}} (or --track mlflow).")

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved config as plain YAML/JSON-able data (aliases such as `from` restored)."""
        return self.model_dump(mode="json", by_alias=True)
