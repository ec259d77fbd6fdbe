"""The base of every config section and the number types the sections share.

A number field takes a number, as the editor schema (dlrun.schema.json, generated from these types) says:
text such as `lr: "1e-3"` or `epochs: "10"` and booleans are refused, so the schema and the loader agree
from this one definition. An unquoted `1e-3` is a number: the YAML loader reads exponents as YAML 1.2 and
editors do (safe_yaml). Bounds go inside the Annotated, before the check, so they stay JSON Schema keywords.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError


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


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, values are re-validated on assignment."""

    # ser_json_inf_nan: a section with its own serializer (a schedule, a sweep range) would otherwise write an
    # infinite number (YAML .inf) as null, which does not read back
    model_config = ConfigDict(extra="forbid", validate_assignment=True, ser_json_inf_nan="constants")
