"""The config contract: one pydantic model per YAML section. Key names are public; keep them.

Only shapes, types and ranges live here. Rules that relate several fields are in `checks.py`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dlrun.layers_schema import LayerItem

PosInt = Annotated[int, Field(gt=0)]
PosFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]

DATA_SOURCES = ("mnist", "fashion_mnist", "synthetic_digits", "npy", "npz", "h5", "idx", "folder", "csv", "table")
FILE_SOURCES = frozenset({"npy", "npz", "h5", "idx", "folder", "csv"})


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, values are re-validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class H5Keys(Section):
    x_train: str = "X_train"
    y_train: str = "y_train"
    x_test: str = "X_test"
    y_test: str = "y_test"


class TableData(Section):
    """An inline table: `columns` names, `rows` of numbers; `target` names the label column."""

    columns: list[str] = Field(min_length=2)
    rows: list[list[float]] = Field(min_length=2)


class DataConfig(Section):
    source: Literal[DATA_SOURCES] = "synthetic_digits"  # type: ignore[valid-type]
    path: str | None = None
    x: str = "X.npy"
    y: str = "Y.npy"
    keys: H5Keys = Field(default_factory=H5Keys)
    image_size: tuple[PosInt, PosInt] | None = None
    color: Literal["grayscale", "rgb"] = "grayscale"
    normalize: bool = True
    test_split: float = Field(default=0.2, ge=0, lt=1)
    validation: Literal["test"] | Fraction = "test"
    limit: PosInt | None = None
    # synthetic_digits
    style: Literal["clean", "street"] = "clean"
    n_train: PosInt = 2000
    n_test: PosInt = 500
    seed: int = 0
    # csv / table (regression or tabular classification)
    table: TableData | None = None
    target: str | None = None
    download: bool = False


class BaseModelConfig(Section):
    """A frozen (or trainable) base under `model.layers`: a saved model, or a keras application."""

    from_: str | None = Field(default=None, alias="from")
    application: Literal["mobilenet", "mobilenet_v2"] | None = None
    weights: str | None = None
    include_top: bool = False
    trainable: bool = False

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)


class ModelConfig(Section):
    layers: list[LayerItem] = Field(min_length=1)
    l2: float = Field(default=0.0, ge=0)
    l2_layers: Literal["output", "dense", "all"] = "output"
    base: BaseModelConfig | None = None


class OptimizerConfig(Section):
    name: Literal["sgd", "adam", "rmsprop", "adagrad"] = "sgd"
    lr: PosFloat = 0.01
    momentum: float = Field(default=0.0, ge=0, lt=1)
    nesterov: bool = False
    clipnorm: PosFloat | None = None

    @field_validator("lr", mode="before")
    @classmethod
    def _int_lr_is_float(cls, value: Any) -> Any:
        # Keras 3 optimizers reject an int learning rate; `lr: 1` in YAML should just work.
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class EarlyStopping(Section):
    monitor: str = "val_accuracy"
    patience: int = Field(default=2, ge=0)
    min_delta: float = Field(default=0.0, ge=0)
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best_weights: bool = False


class TrainConfig(Section):
    epochs: PosInt = 10
    batch_size: PosInt = 32
    shuffle: bool = True
    early_stopping: EarlyStopping | None = None
    threads: PosInt | None = None
    mixed_precision: bool = False
    jit_compile: bool | Literal["auto"] = "auto"  # Keras' own default: XLA on a GPU, off on CPU
    steps_per_execution: PosInt = 1


class SweepConfig(Section):
    mode: Literal["grid", "zip"] = "grid"
    params: dict[str, list[Any]] = Field(default_factory=dict)
    metric: str = "val_accuracy"
    goal: Literal["max", "min"] = "max"

    @field_validator("params")
    @classmethod
    def _non_empty_lists(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in value.items():
            if not values:
                raise ValueError(f"sweep.params.{key} is an empty list; give at least one value")
        return value


FreezeSpec = Literal["none", "all", "features"] | list[str]


class LastN(Section):
    last: PosInt


class StageOptimizer(Section):
    name: Literal["sgd", "adam", "rmsprop", "adagrad"] | None = None
    lr: PosFloat | None = None
    momentum: float | None = Field(default=None, ge=0, lt=1)


class StageConfig(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    freeze: FreezeSpec = "features"
    unfreeze: list[str] | LastN | None = None
    epochs: PosInt = 10
    optimizer: StageOptimizer | None = None


class TransferConfig(Section):
    from_: str | None = Field(default=None, alias="from")
    match: Literal["auto", "by_name"] = "auto"
    head: Literal["auto", "keep", "reinit"] = "auto"
    stages: list[StageConfig] = Field(default_factory=lambda: [StageConfig(name="feature_extraction")])

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)


class ExperimentConfig(Section):
    name: str = Field(default="experiment", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)
    seed: int = Field(default=0, ge=0, lt=2**31)
    task: Literal["classification", "regression"] = "classification"
    loss: Literal["auto", "crossentropy", "sse", "mse"] = "auto"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sweep: SweepConfig | None = None
    transfer: TransferConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved config as plain YAML/JSON-able data (aliases such as `from` restored)."""
        return self.model_dump(mode="json", by_alias=True)
