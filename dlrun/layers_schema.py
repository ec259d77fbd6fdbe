"""Layer types accepted under `model.layers`, each with its validated arguments.

A layer item is a one-key mapping: `- conv2d: {filters: 32, kernel_size: 3}`. The key picks the
argument model below; `LayerItem` is the tagged union pydantic validates against.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, model_serializer

Activation = Literal[
    "relu", "softmax", "sigmoid", "tanh", "linear", "elu", "selu", "gelu", "softplus", "swish", "leaky_relu"
]
Padding = Literal["valid", "same"]
PosInt = Annotated[int, Field(gt=0)]
Size2 = PosInt | tuple[PosInt, PosInt]


class LayerArgs(BaseModel):
    """Arguments common to every layer type."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64)


class DenseArgs(LayerArgs):
    units: PosInt
    activation: Activation | None = None
    use_bias: bool = True


class Conv2DArgs(LayerArgs):
    filters: PosInt
    kernel_size: Size2
    strides: Size2 = 1
    padding: Padding = "valid"
    activation: Activation | None = None
    use_bias: bool = True


class PoolArgs(LayerArgs):
    pool_size: Size2 = 2
    strides: Size2 | None = None
    padding: Padding = "valid"


class DropoutArgs(LayerArgs):
    rate: float = Field(ge=0.0, lt=1.0)


class BatchNormArgs(LayerArgs):
    momentum: float = Field(default=0.99, gt=0.0, lt=1.0)
    epsilon: float = Field(default=0.001, gt=0.0)


class ActivationArgs(LayerArgs):
    activation: Activation


LAYER_TYPES: dict[str, type[LayerArgs]] = {
    "dense": DenseArgs,
    "conv2d": Conv2DArgs,
    "separable_conv2d": Conv2DArgs,
    "max_pool2d": PoolArgs,
    "avg_pool2d": PoolArgs,
    "dropout": DropoutArgs,
    "flatten": LayerArgs,
    "batch_norm": BatchNormArgs,
    "global_avg_pool2d": LayerArgs,
    "activation": ActivationArgs,
}
WEIGHTED_TYPES = frozenset({"dense", "conv2d", "separable_conv2d", "batch_norm"})
IMAGE_TYPES = frozenset({"conv2d", "separable_conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d"})


class _Item(BaseModel):
    """Base of the one-key layer items; `type` and `args` give uniform access."""

    model_config = ConfigDict(extra="forbid")

    @property
    def type(self) -> str:
        return next(iter(type(self).model_fields))

    @property
    def args(self) -> LayerArgs:
        return getattr(self, self.type)

    @model_serializer
    def _dump(self) -> dict[str, Any]:
        return {self.type: self.args.model_dump(exclude_none=True)}


def _item_class(type_name: str, args: type[LayerArgs]) -> type[_Item]:
    cls_name = "".join(part.title() for part in type_name.split("_")) + "Item"
    return type(cls_name, (_Item,), {"__annotations__": {type_name: args}})


ITEM_CLASSES: dict[str, type[_Item]] = {name: _item_class(name, args) for name, args in LAYER_TYPES.items()}


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
