"""The base of every settings section: a typo, an infinite float or a boolean given for a number
is a one-line config error, not a traceback later (TOML and `--set` both accept `inf` and `true`)."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def leaf_types(annotation: Any) -> list[Any]:
    """The types a field admits: the members of a union, the type under Annotated."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [leaf for arg in typing.get_args(annotation) for leaf in leaf_types(arg)]
    if origin is typing.Annotated:
        return leaf_types(typing.get_args(annotation)[0])
    return [annotation]


def wants_a_number(annotation: Any) -> bool:
    """A field that admits int or float but not bool: pydantic's lax mode would read True as 1."""
    leaves = leaf_types(annotation)
    numeric = any(isinstance(t, type) and issubclass(t, (int, float)) and t is not bool for t in leaves)
    return numeric and not any(t is bool or t is Any for t in leaves)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and wants_a_number(cls.model_fields[info.field_name].annotation):
            raise ValueError("expected a number, not a boolean")
        return value
