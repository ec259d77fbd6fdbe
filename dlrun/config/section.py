"""The base of every config section and the number types the sections share.

A number field takes a number: pydantic's lax mode would read `batch_size: true` as 1 (and YAML 1.1
reads yes/no/on/off as booleans too), so a boolean given where no boolean belongs is refused
(`StrictNumbers`); non-finite floats (`.nan`, `.inf`) are refused everywhere (`allow_inf_nan`).
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

PosInt = Annotated[int, Field(gt=0)]
PosFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
FractionOrNone = Annotated[float, Field(ge=0, lt=1)]


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

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
