"""Layer types accepted under `model.layers`: their validated arguments and their Keras names.

A layer item is a one-key mapping: `- conv2d: {filters: 32, kernel_size: 3}`. The key picks the
argument model below; `LayerItem` is the tagged union pydantic validates against. `LAYER_TYPES`
is the one table of what each type is in Keras (class, default name prefix) and what input it needs,
read by the model builder, the weights readers and the config checks. No TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, model_serializer

from dlrun.config.section import Float, PosInt, StrictNumbers

Activation = Literal[
    "relu", "softmax", "sigmoid", "tanh", "linear", "elu", "selu", "gelu", "softplus", "swish", "leaky_relu"
]
Padding = Literal["valid", "same"]
Size2 = PosInt | tuple[PosInt, PosInt]


class LayerArgs(StrictNumbers):
    """Arguments common to every layer type."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64,
                             description="Layer name (default: Keras 2's fresh-session name, e.g. conv2d_1).")


class DenseArgs(LayerArgs):
    """A fully connected layer."""

    units: PosInt = Field(description="Output size; the last layer's units are the classes (1 for regression).")
    activation: Activation | None = Field(default=None, description="Activation (none: linear).")
    use_bias: bool = Field(default=True, description="Add a bias vector.")


class Conv2DArgs(LayerArgs):
    """A 2-D convolution (also separable_conv2d)."""

    filters: PosInt = Field(description="Number of output channels.")
    kernel_size: Size2 = Field(description="Kernel height and width (one number: square).")
    strides: Size2 = Field(default=1, description="Step of the kernel.")
    padding: Padding = Field(default="valid", description="valid (no padding) or same (keep the size).")
    activation: Activation | None = Field(default=None, description="Activation (none: linear).")
    use_bias: bool = Field(default=True, description="Add a bias vector.")


class PoolArgs(LayerArgs):
    """Max or average pooling."""

    pool_size: Size2 = Field(default=2, description="Window height and width.")
    strides: Size2 | None = Field(default=None, description="Step of the window (default: pool_size).")
    padding: Padding = Field(default="valid", description="valid or same.")


class DropoutArgs(LayerArgs):
    """Dropout while training."""

    rate: Float = Field(ge=0.0, lt=1.0, description="Fraction of inputs dropped, in [0, 1).")


class BatchNormArgs(LayerArgs):
    """Batch normalisation."""

    momentum: Float = Field(default=0.99, gt=0.0, lt=1.0, description="Momentum of the moving statistics.")
    epsilon: Float = Field(default=0.001, gt=0.0, description="Added to the variance for stability.")


class ActivationArgs(LayerArgs):
    """An activation on its own."""

    activation: Activation = Field(description="The activation function.")


@dataclass(frozen=True)
class LayerType:
    """What a layer type is: its arguments, its Keras class and default name prefix, and its input."""

    args: type[LayerArgs]
    keras_class: str
    prefix: str
    needs_images: bool = False  # takes (height, width, channels) input
    flattens: bool = False  # its output is flat, so dense layers may follow


LAYER_TYPES: dict[str, LayerType] = {
    "dense": LayerType(DenseArgs, "Dense", "dense"),
    "conv2d": LayerType(Conv2DArgs, "Conv2D", "conv2d", needs_images=True),
    "separable_conv2d": LayerType(Conv2DArgs, "SeparableConv2D", "separable_conv2d", needs_images=True),
    "max_pool2d": LayerType(PoolArgs, "MaxPooling2D", "max_pooling2d", needs_images=True),
    "avg_pool2d": LayerType(PoolArgs, "AveragePooling2D", "average_pooling2d", needs_images=True),
    "dropout": LayerType(DropoutArgs, "Dropout", "dropout"),
    "flatten": LayerType(LayerArgs, "Flatten", "flatten", flattens=True),
    "batch_norm": LayerType(BatchNormArgs, "BatchNormalization", "batch_normalization"),
    "global_avg_pool2d": LayerType(LayerArgs, "GlobalAveragePooling2D", "global_average_pooling2d",
                                   needs_images=True, flattens=True),
    "activation": LayerType(ActivationArgs, "Activation", "activation"),
}
IMAGE_TYPES = frozenset(name for name, kind in LAYER_TYPES.items() if kind.needs_images)
FLATTENING = frozenset(name for name, kind in LAYER_TYPES.items() if kind.flattens)
# model.l2_layers -> the layer types that get the L2 penalty besides the output layer
L2_TYPES: dict[str, frozenset[str]] = {"output": frozenset(), "dense": frozenset({"dense"}),
                                       "all": frozenset({"dense", "conv2d", "separable_conv2d"})}


def layer_names(items: Sequence[Any]) -> list[str]:
    """Deterministic names for `model.layers` items, as Keras 2 would give them in a fresh session
    (conv2d, conv2d_1, ...), unless a layer sets `name`. Stable names make weight files portable."""
    counts: dict[str, int] = {}
    names = []
    for item in items:
        prefix = LAYER_TYPES[item.type].prefix
        n = counts.get(prefix, 0)
        counts[prefix] = n + 1
        names.append(item.args.name or (prefix if n == 0 else f"{prefix}_{n}"))
    return names


class _Item(BaseModel):
    """Base of the one-key layer items; `type` and `args` give uniform access."""

    model_config = ConfigDict(extra="forbid")

    @property
    def type(self) -> str:
        """The layer type: the item's one key."""
        return next(iter(type(self).model_fields))

    @property
    def args(self) -> LayerArgs:
        """The layer's validated arguments."""
        return getattr(self, self.type)

    @model_serializer
    def _dump(self) -> dict[str, Any]:
        return {self.type: self.args.model_dump(exclude_none=True)}


def _item_class(type_name: str, kind: LayerType) -> type[_Item]:
    cls_name = "".join(part.title() for part in type_name.split("_")) + "Item"
    field = Field(description=f"A {kind.keras_class} layer: {(kind.args.__doc__ or '').strip()}")
    return type(cls_name, (_Item,), {"__annotations__": {type_name: kind.args}, type_name: field,
                                     "__doc__": f"`- {type_name}: {{...}}`"})


ITEM_CLASSES: dict[str, type[_Item]] = {name: _item_class(name, kind) for name, kind in LAYER_TYPES.items()}


def _layer_tag(value: Any) -> str | None:
    if isinstance(value, _Item):
        return value.type
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return key if key in ITEM_CLASSES else None
    return None


def _none_means_no_args(value: Any) -> Any:
    """`flatten:` (YAML null) means the same as `flatten: {}`."""
    if isinstance(value, dict) and len(value) == 1:
        key, args = next(iter(value.items()))
        if args is None:
            return {key: {}}
    return value


LayerItem = Annotated[
    Union[tuple(Annotated[cls, Tag(name)] for name, cls in ITEM_CLASSES.items())],  # noqa: UP007
    Discriminator(_layer_tag, custom_error_type="unknown_layer", custom_error_message="unknown layer type"),
    BeforeValidator(_none_means_no_args),
]
