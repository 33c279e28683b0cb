"""Our schema against the shared public contract: everything the web client relies on exists
with the identical type; additions are allowed only where they cannot break a client."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    build_schema,
)
from graphql.pyutils import Undefined

from app.core.config import Settings
from app.schema.build import build_schema as build_our_schema
from tests.conftest import REPO_ROOT

CONTRACT_PATH = REPO_ROOT.parent / "shared" / "contract" / "schema.graphql"


@pytest.fixture(scope="module")
def contract() -> GraphQLSchema:
    if not CONTRACT_PATH.is_file():
        pytest.skip(f"shared contract not found at {CONTRACT_PATH}")
    return build_schema(Path(CONTRACT_PATH).read_text())


@pytest.fixture(scope="module")
def ours(settings: Settings) -> GraphQLSchema:
    # Parse our printed SDL, exactly as a client generator would see it.
    return build_schema(build_our_schema(settings).as_str())


def _user_types(schema: GraphQLSchema) -> dict[str, object]:
    return {name: t for name, t in schema.type_map.items() if not name.startswith("__")}


def _differences(contract: GraphQLSchema, ours: GraphQLSchema) -> list[str]:
    problems: list[str] = []
    our_types = ours.type_map
    for name, expected in _user_types(contract).items():
        actual = our_types.get(name)
        if actual is None:
            problems.append(f"type {name} is missing")
            continue
        if type(actual) is not type(expected):
            problems.append(
                f"type {name} is a {type(actual).__name__}, contract: {type(expected).__name__}"
            )
            continue
        if isinstance(expected, GraphQLEnumType):
            assert isinstance(actual, GraphQLEnumType)
            for value in expected.values:
                if value not in actual.values:
                    problems.append(f"enum value {name}.{value} is missing")
        elif isinstance(expected, GraphQLInputObjectType):
            assert isinstance(actual, GraphQLInputObjectType)
            for field_name, field in expected.fields.items():
                ours_field = actual.fields.get(field_name)
                if ours_field is None:
                    problems.append(f"input field {name}.{field_name} is missing")
                    continue
                if str(ours_field.type) != str(field.type):
                    problems.append(
                        f"input field {name}.{field_name}: {ours_field.type}, contract {field.type}"
                    )
                if field.default_value != ours_field.default_value:
                    problems.append(
                        f"input field {name}.{field_name} default {ours_field.default_value!r}, "
                        f"contract {field.default_value!r}"
                    )
            for field_name, ours_field in actual.fields.items():
                required = (
                    isinstance(ours_field.type, GraphQLNonNull)
                    and ours_field.default_value is Undefined
                )
                if field_name not in expected.fields and required:
                    problems.append(f"added input field {name}.{field_name} is required")
        elif isinstance(expected, (GraphQLObjectType, GraphQLInterfaceType)):
            assert isinstance(actual, (GraphQLObjectType, GraphQLInterfaceType))
            our_interfaces = {i.name for i in actual.interfaces}
            for interface in expected.interfaces:
                if interface.name not in our_interfaces:
                    problems.append(f"type {name} does not implement {interface.name}")
            for field_name, field in expected.fields.items():
                ours_field = actual.fields.get(field_name)
                if ours_field is None:
                    problems.append(f"field {name}.{field_name} is missing")
                    continue
                if str(ours_field.type) != str(field.type):
                    problems.append(
                        f"field {name}.{field_name}: {ours_field.type}, contract {field.type}"
                    )
                for arg_name, arg in field.args.items():
                    ours_arg = ours_field.args.get(arg_name)
                    if ours_arg is None:
                        problems.append(f"argument {name}.{field_name}({arg_name}) is missing")
                    elif str(ours_arg.type) != str(arg.type):
                        problems.append(
                            f"argument {name}.{field_name}({arg_name}): {ours_arg.type}, "
                            f"contract {arg.type}"
                        )
                for arg_name, ours_arg in ours_field.args.items():
                    if arg_name not in field.args and isinstance(ours_arg.type, GraphQLNonNull):
                        problems.append(
                            f"added argument {name}.{field_name}({arg_name}) is required"
                        )
        elif isinstance(expected, GraphQLUnionType):
            assert isinstance(actual, GraphQLUnionType)
            missing = {t.name for t in expected.types} - {t.name for t in actual.types}
            problems.extend(f"union {name} lacks member {member}" for member in sorted(missing))
        else:
            assert isinstance(expected, GraphQLScalarType)
    for root in ("query_type", "mutation_type", "subscription_type"):
        expected_root = getattr(contract, root)
        actual_root = getattr(ours, root)
        if expected_root is not None and (
            actual_root is None or actual_root.name != expected_root.name
        ):
            problems.append(f"root {root} is {actual_root}, contract {expected_root.name}")
    return problems


def test_our_schema_honours_the_contract(contract: GraphQLSchema, ours: GraphQLSchema) -> None:
    assert _differences(contract, ours) == []


def test_the_comparison_notices_a_broken_contract(contract: GraphQLSchema) -> None:
    """The checker itself is not vacuous: a schema that renames, retypes and drops things
    produces exactly those complaints."""
    broken = build_schema(
        CONTRACT_PATH.read_text()
        .replace("  progress: Float!          # 0..1", "  progress: Float")
        .replace("enum Sentiment { POSITIVE NEUTRAL NEGATIVE }", "enum Sentiment { POSITIVE }")
        .replace("deleteCall(id: ID!): ID!", "deleteCall(callId: ID!): ID!")
        .replace("type Call implements Node {", "type Call {")
    )
    problems = _differences(contract, broken)
    assert "field Call.progress: Float, contract Float!" in problems
    assert "enum value Sentiment.NEUTRAL is missing" in problems
    assert "argument Mutation.deleteCall(id) is missing" in problems
    assert "added argument Mutation.deleteCall(callId) is required" in problems
    assert "type Call does not implement Node" in problems


def test_contract_core_types_are_present(ours: GraphQLSchema) -> None:
    """Independent of the contract file: the entry points a client starts from."""
    query = ours.query_type
    mutation = ours.mutation_type
    subscription = ours.subscription_type
    assert query is not None and mutation is not None and subscription is not None
    assert str(query.fields["call"].type) == "Call!"
    assert str(mutation.fields["uploadCall"].args["file"].type) == "Upload!"
    assert str(subscription.fields["callStatus"].type) == "CallStatusEvent!"
