"""GraphQL types from rows: one function for every type that shows stored results.

A field takes the row's value of the same name; a field in seconds takes the column with
the `_s` suffix (`start` <- `start_s`, `talk_seconds` <- `talk_s`). Fields with a resolver
are left to it; anything else (private fields, a renamed column) is passed explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from strawberry.types.base import StrawberryObjectDefinition

T = TypeVar("T")

_MISSING = object()


def _column_names(field: str) -> tuple[str, ...]:
    return (field, f"{field}_s", f"{field.removesuffix('_seconds')}_s")


def _value(row: object, name: str) -> Any:
    if isinstance(row, Mapping):
        return row.get(name, _MISSING)
    return getattr(row, name, _MISSING)


def from_row(graphql_type: type[T], row: object, **values: Any) -> T:
    """An instance of `graphql_type` whose plain fields come from `row` (an ORM row or a
    JSON object) unless given in `values`."""
    definition: StrawberryObjectDefinition = graphql_type.__strawberry_definition__  # type: ignore[attr-defined]
    for field in definition.fields:
        name = field.python_name
        if name in values or field.base_resolver is not None:
            continue
        for column in _column_names(name):
            value = _value(row, column)
            if value is not _MISSING:
                values[name] = value
                break
        else:
            if isinstance(row, Mapping):
                values[name] = None  # an optional key absent from stored JSON
            else:
                raise AttributeError(f"{type(row).__name__} has no column for {name!r}")
    return graphql_type(**values)
