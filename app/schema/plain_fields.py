"""Plain fields completed without graphql-core's per-field machinery.

graphql-core executes every field of every object through the same steps: a `Path`, a
resolve-info object, the resolver, then `complete_value` down the type's wrappers. That costs
about 10 µs a field, and a 60-minute call's `words { text start end confidence }` is 40,000
fields: 400 ms spent taking attributes off objects.

Most of those fields are *plain*: a scalar or enum with no arguments, no resolver and no
field extension, so what graphql-core computes is `coerce_output_value(getattr(obj, name))`.
`PlainFieldsExecutor` computes exactly that directly, in the selection's order, for

- every object: its plain fields, with the others executed as usual;
- a list of objects whose selected fields are all plain: the whole list in one loop.

Anything unusual for a value (None in a non-null field, a value the scalar refuses, an
exception) sends that object, or that list, back through graphql-core's own path, so errors,
their paths and null propagation are graphql-core's, unchanged. Middleware (schema extensions
with a `resolve` hook) sees every field, so with middleware nothing is taken off the normal
path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from math import isfinite
from operator import attrgetter
from typing import Any, NamedTuple

from graphql import (
    GraphQLBoolean,
    GraphQLFloat,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLString,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import AwaitableOrValue, Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

_TYPENAME = "__typename"


class _Failed(Exception):
    """A plain value that graphql-core must complete itself (it raises the right error)."""


class PlainField(NamedTuple):
    response_name: str
    read: Callable[[Any], Any]
    # The Python type the scalar outputs unchanged (str for String, bool for Boolean, a
    # finite float for Float), checked before calling `coerce`; None for other scalars.
    output_type: type | None
    coerce: Callable[[Any], Any]
    non_null: bool


class _Plan(NamedTuple):
    grouped_field_set: GroupedFieldSet  # held so its id is not reused while cached
    plain: tuple[PlainField, ...]
    # The fields graphql-core executes; None when every field is plain.
    others: GroupedFieldSet | None
    order: tuple[str, ...]


def _constant(value: str) -> Callable[[Any], str]:
    return lambda _source: value


def _plain_field(
    parent_type: GraphQLObjectType, response_name: str, details: FieldDetailsList
) -> PlainField | None:
    node = details[0].node
    name = node.name.value
    if name == _TYPENAME:
        return PlainField(response_name, _constant(parent_type.name), str, _identity, True)
    field_def = parent_type.fields.get(name)
    if field_def is None or field_def.args or node.arguments:
        return None
    resolve = field_def.resolve
    if resolve is None or not getattr(resolve, "_is_default", False):
        return None  # a resolver, a field extension or an exception handler
    strawberry_field = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(strawberry_field, StrawberryField):
        return None
    field_type = field_def.type
    non_null = isinstance(field_type, GraphQLNonNull)
    named = field_type.of_type if non_null else field_type
    if not is_leaf_type(named):
        return None
    python_name = strawberry_field.python_name
    default_resolver = strawberry_field.default_resolver
    if default_resolver is getattr:
        read: Callable[[Any], Any] = attrgetter(python_name)
    else:
        read = partial(_resolve_with, default_resolver, python_name)
    coerce = named.coerce_output_value
    return PlainField(response_name, read, _UNCHANGED_OUTPUT.get(coerce), coerce, non_null)


def _resolve_with(resolver: Callable[[Any, str], Any], name: str, source: Any) -> Any:
    return resolver(source, name)


# graphql-core's coercions of these scalars return a value of this exact type unchanged.
_UNCHANGED_OUTPUT: dict[Callable[[Any], Any], type] = {
    GraphQLString.coerce_output_value: str,
    GraphQLFloat.coerce_output_value: float,
    GraphQLBoolean.coerce_output_value: bool,
}


def _identity(value: Any) -> Any:
    return value


def plain_values(fields: tuple[PlainField, ...], source: Any) -> dict[str, Any]:
    """The completed values of `fields` on `source`; `_Failed` where graphql-core must
    complete them (to raise its own error)."""
    values: dict[str, Any] = {}
    try:
        for response_name, read, output_type, coerce, non_null in fields:
            value = read(source)
            kind = type(value)
            if kind is output_type and (kind is not float or isfinite(value)):
                values[response_name] = value
                continue
            if value is None:
                if non_null:
                    raise _Failed
                values[response_name] = None
                continue
            if isinstance(value, Exception):
                raise _Failed
            coerced = coerce(value)
            if coerced is None or coerced is Undefined:
                raise _Failed
            values[response_name] = coerced
    except _Failed:
        raise
    except Exception as error:
        raise _Failed from error
    return values


class PlainFieldsExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor with plain fields completed directly (see the module doc)."""

    _plans: dict[tuple[str, int], _Plan]

    def _plan(self, parent_type: GraphQLObjectType, grouped: GroupedFieldSet) -> _Plan | None:
        if self.middleware_manager is not None and self.middleware_manager.middlewares:
            return None
        try:
            plans = self._plans
        except AttributeError:
            plans = self._plans = {}
        key = (parent_type.name, id(grouped))
        plan = plans.get(key)
        if plan is None or plan.grouped_field_set is not grouped:
            plain: list[PlainField] = []
            others: GroupedFieldSet = {}
            for response_name, details in grouped.items():
                field = _plain_field(parent_type, response_name, details)
                if field is None:
                    others[response_name] = details
                else:
                    plain.append(field)
            plan = plans[key] = _Plan(grouped, tuple(plain), others or None, tuple(grouped.keys()))
        return plan if plan.plain else None

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        plan = self._plan(parent_type, grouped_field_set)
        if plan is None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        try:
            values = plain_values(plan.plain, source_value)
        except _Failed:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        if plan.others is None:
            return values
        others = super().execute_fields(
            parent_type, source_value, path, plan.others, position_context
        )
        if isinstance(others, dict):
            return _merged(plan.order, values, others)
        return _merge_later(plan.order, values, others)

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[list[Any]]:
        completed = self._complete_plain_list(return_type, field_details_list, path, result)
        if completed is not None:
            return completed
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _complete_plain_list(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: FieldDetailsList,
        path: Path,
        result: Any,
    ) -> list[dict[str, Any]] | None:
        """A list of objects whose selected fields are all plain, or None for the usual
        path (anything else, including any item that is not plain to complete)."""
        if not isinstance(result, (list, tuple)):
            return None
        item_type = return_type.of_type
        if isinstance(item_type, GraphQLNonNull):
            item_type = item_type.of_type
        if not isinstance(item_type, GraphQLObjectType) or item_type.is_type_of is not None:
            return None
        if self.get_stream_usage(field_details_list, path) is not None:
            return None
        grouped, defer_usages, _ = self.collect_subfields(item_type, field_details_list)
        if defer_usages:
            return None
        plan = self._plan(item_type, grouped)
        if plan is None or plan.others is not None:
            return None
        fields = plan.plain
        try:
            return [plain_values(fields, item) for item in result]
        except _Failed:
            return None


def _merged(
    order: tuple[str, ...], plain: dict[str, Any], others: dict[str, Any]
) -> dict[str, Any]:
    """Both parts in the selection's order (a field graphql-core left out stays out)."""
    results: dict[str, Any] = {}
    for name in order:
        if name in plain:
            results[name] = plain[name]
        elif name in others:
            results[name] = others[name]
    return results


async def _merge_later(
    order: tuple[str, ...], plain: dict[str, Any], others: Awaitable[dict[str, Any]]
) -> dict[str, Any]:
    return _merged(order, plain, await others)


__all__ = ["PlainFieldsExecutor", "plain_values"]
