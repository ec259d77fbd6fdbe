"""The base of every config section and the number types the sections share.

A number field takes a number, as the editor schema (dlrun.schema.json, generated from these types) says:
text such as `lr: "1e-3"` or `epochs: "10"` and booleans are refused, so the schema and the loader agree
from this one definition. An unquoted `1e-3` is a number: the YAML loader reads exponents as YAML 1.2 and
editors do (safe_yaml). Bounds go inside the Annotated, before the check, so they stay JSON Schema keywords.
Every section also refuses a boolean in any field whose type takes numbers and no boolean (lists of numbers
too: pydantic's lax mode would read `batch_size: true` as 1, and YAML 1.1 reads yes/no/on/off as booleans),
and non-finite floats (`.nan`, `.inf`) everywhere.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from dlrun.limits import MAX_EPOCHS


def _number(value: Any) -> Any:
    """Pass a value on to the number validation unless it is text or a boolean."""
    if isinstance(value, str):
        raise PydanticCustomError("number_text", "a number is expected, not text (a quoted value is text "
                                  "in YAML): write it without quotes")
    if isinstance(value, bool):
        raise PydanticCustomError("number_bool", "a number is expected, not a boolean")
    return value


_IS_NUMBER = BeforeValidator(_number)
Int = Annotated[int, _IS_NUMBER]
Float = Annotated[float, _IS_NUMBER]
PosInt = Annotated[int, Field(gt=0), _IS_NUMBER]
NonNegInt = Annotated[int, Field(ge=0), _IS_NUMBER]
PosFloat = Annotated[float, Field(gt=0), _IS_NUMBER]
NonNegFloat = Annotated[float, Field(ge=0), _IS_NUMBER]
Fraction = Annotated[float, Field(gt=0, lt=1), _IS_NUMBER]
FractionOrNone = Annotated[float, Field(ge=0, lt=1), _IS_NUMBER]
Seed = Annotated[int, Field(ge=0, lt=2**32), _IS_NUMBER]  # what NumPy and TensorFlow take as a seed


def _at_most_epochs(value: int) -> int:
    if value > MAX_EPOCHS:
        raise PydanticCustomError("too_many_epochs", f"{value:,} epochs would never end, and every checkpoint keeps "
                                  f"one metrics row per epoch; at most {MAX_EPOCHS:,}")
    return value


# the bound is the schema's `maximum` (the editor flags it) and this check's (a message that says why)
Epochs = Annotated[int, Field(gt=0, json_schema_extra={"maximum": MAX_EPOCHS}), _IS_NUMBER,
                   AfterValidator(_at_most_epochs)]


def _fraction_check(name: str, maximum: float, exclusive: bool, example: str) -> Any:
    def check(value: float) -> float:
        if value < 0:
            raise PydanticCustomError("negative_range", f"{name} takes the size of a range that goes both "
                                      f"ways: write {abs(value):g} (from -{abs(value):g} to +{abs(value):g})")
        if value > maximum or (exclusive and value == maximum):
            bound = f"below {maximum:g}" if exclusive else f"at most {maximum:g}"
            raise PydanticCustomError("fraction_too_big", f"{name} must be {bound}: it is a fraction {example}")
        return value

    return check


def Fraction0To(maximum: float, name: str, example: str, exclusive: bool = False) -> Any:  # noqa: N802 - a type
    """A number from 0 up to `maximum` (or below it, `exclusive`) whose error names `name` and shows
    `example` (what a value means), negative values too. The bounds are the schema's minimum and maximum
    (or exclusiveMaximum) too, so the editor flags them."""
    bound = {"exclusiveMaximum": maximum} if exclusive else {"maximum": maximum}
    return Annotated[float, Field(json_schema_extra={"minimum": 0, **bound}), _IS_NUMBER,
                     AfterValidator(_fraction_check(name, maximum, exclusive, example))]


def _leaves(annotation: Any) -> list[Any]:
    """The types and Literal values an annotation is made of (through unions, Annotated, lists, tuples)."""
    origin = get_origin(annotation)
    if origin is Literal:
        return list(get_args(annotation))
    if origin in (Union, types.UnionType, Annotated, list, tuple, set, frozenset):
        return [leaf for arg in get_args(annotation) if isinstance(arg, type) or get_origin(arg) is not None
                for leaf in _leaves(arg)]
    return [annotation]


def _refuses_bool(annotation: Any) -> bool:
    """True where `annotation` takes a number and no boolean (bool, Any, Literal[True] take one)."""
    leaves = _leaves(annotation)
    takes_bool = any(leaf is bool or leaf is Any or isinstance(leaf, bool) for leaf in leaves)
    return not takes_bool and any(leaf is int or leaf is float for leaf in leaves)


def _holds_bool(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, list | tuple) and any(_holds_bool(v) for v in value))


class StrictNumbers(BaseModel):
    """Refuses a boolean in any field that has no boolean in its type (a number, a list of numbers...)."""

    model_config = ConfigDict(allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if _holds_bool(value) and info.field_name in cls.model_fields and _refuses_bool(
                cls.model_fields[info.field_name].annotation):
            raise PydanticCustomError("bool_not_number", "expected a number, not a boolean (YAML reads true, false, "
                                      "yes, no, on and off as booleans); write the number")
        return value


class Section(StrictNumbers):
    """Base for every config section: unknown keys are errors, values are re-validated on assignment."""

    # ser_json_inf_nan: a section with its own serializer (a schedule, a sweep range) would otherwise write an
    # infinite number (YAML .inf) as null, which does not read back
    model_config = ConfigDict(extra="forbid", validate_assignment=True, ser_json_inf_nan="constants")
