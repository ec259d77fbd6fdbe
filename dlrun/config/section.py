"""The base of every config section and the number types the sections share."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

PosInt = Annotated[int, Field(gt=0)]
PosFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
FractionOrNone = Annotated[float, Field(ge=0, lt=1)]


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, values are re-validated on assignment."""

    # ser_json_inf_nan: a section with its own serializer (a schedule, a sweep range) would otherwise write an
    # infinite number (YAML .inf) as null, which does not read back
    model_config = ConfigDict(extra="forbid", validate_assignment=True, ser_json_inf_nan="constants")
