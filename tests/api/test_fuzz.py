"""Property-based fuzzing of the served schema over ASGI, anonymous and as a signed-in agent.

Documents come from hypothesis-graphql (valid ones, and ones with one schema violation);
variables come from a strategy built here from each root field's argument types, with
NUL characters, lone surrogates, out-of-range numbers and wrong JSON types mixed in.
Arbitrary bodies (bytes, any JSON, 200,000 nested `[`) under each content type complete it.
The property, for every request: never an HTTP 5xx, never INTERNAL_SERVER_ERROR, and an
answer within `ANSWER_BOUND_S`. Seeded (derandomized) and bounded: 360 examples in
all, well under two minutes on the project's machine.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import graphql
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, queries

from app.core.config import Environment, Settings
from app.schema.build import build_schema

ANSWER_BOUND_S = 2.0
JSON_ = "application/json"
GRAPHQL_ = "application/graphql-response+json"
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _schema() -> graphql.GraphQLSchema:
    """The schema as the test app serves it (introspection on, as in development)."""
    return build_schema(Settings(environment=Environment.TEST, jwt_key="k" * 48))._schema


SCHEMA = _schema()

_DATETIMES = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
CUSTOM_SCALARS: dict[str, st.SearchStrategy[graphql.ValueNode]] = {
    "DateTime": _DATETIMES.map(lambda moment: graphql.StringValueNode(value=moment.isoformat())),
    "Date": st.dates().map(lambda day: graphql.StringValueNode(value=day.isoformat())),
    "JSON": st.sampled_from(
        [
            graphql.NullValueNode(),
            graphql.IntValueNode(value="1"),
            graphql.StringValueNode(value="a\x00"),
            graphql.ListValueNode(values=()),
            graphql.ObjectValueNode(fields=()),
        ]
    ),
    # Uploads come only through multipart requests; a literal can only be null or wrong.
    "Upload": st.sampled_from([graphql.NullValueNode(), graphql.StringValueNode(value="0")]),
}

# Strings: any code point, a NUL and a lone surrogate among them now and then.
_TEXT = st.text(max_size=40) | st.sampled_from(["a\x00b", "\ud800", "", " " * 3, "ё" * 10])
_JUNK: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)


def _values(type_: graphql.GraphQLInputType, depth: int = 0) -> st.SearchStrategy[Any]:
    """JSON variable values for an input type: mostly well-typed, sometimes anything."""
    nullable = not isinstance(type_, graphql.GraphQLNonNull)
    inner = graphql.get_nullable_type(type_)
    typed: st.SearchStrategy[Any]
    if isinstance(inner, graphql.GraphQLList):
        typed = st.lists(_values(inner.of_type, depth + 1), max_size=3)
    elif isinstance(inner, graphql.GraphQLInputObjectType):
        if depth > 3:
            typed = st.just({})
        else:
            required = {
                name: _values(field.type, depth + 1)
                for name, field in inner.fields.items()
                if isinstance(field.type, graphql.GraphQLNonNull)
            }
            optional = {
                name: _values(field.type, depth + 1)
                for name, field in inner.fields.items()
                if name not in required
            }
            typed = st.fixed_dictionaries(required, optional=optional)
    elif isinstance(inner, graphql.GraphQLEnumType):
        typed = st.sampled_from(list(inner.values)) | _TEXT
    elif inner is graphql.GraphQLInt:
        typed = st.integers(min_value=-(2**40), max_value=2**40)
    elif inner is graphql.GraphQLFloat:
        typed = st.floats(allow_nan=False, allow_infinity=False)
    elif inner is graphql.GraphQLBoolean:
        typed = st.booleans()
    elif isinstance(inner, graphql.GraphQLScalarType) and inner.name == "DateTime":
        typed = _DATETIMES.map(datetime.isoformat) | _TEXT
    elif isinstance(inner, graphql.GraphQLScalarType) and inner.name == "Date":
        typed = st.dates().map(lambda day: day.isoformat()) | _TEXT
    elif isinstance(inner, graphql.GraphQLScalarType) and inner.name == "JSON":
        typed = _JUNK
    elif isinstance(inner, graphql.GraphQLScalarType) and inner.name == "Upload":
        typed = st.none()
    else:  # String, ID and other scalars
        typed = _TEXT
    choices = [typed, typed, typed, _JUNK]
    if nullable:
        choices.append(st.none())
    return st.one_of(choices)


def _selection(type_: graphql.GraphQLOutputType) -> str:
    named = graphql.get_named_type(type_)
    return (
        ""
        if isinstance(named, (graphql.GraphQLScalarType, graphql.GraphQLEnumType))
        else ("{ __typename }")
    )


def _operations_with_variables() -> list[tuple[str, str, dict[str, st.SearchStrategy[Any]]]]:
    """(root field, document, variable strategies): every argument of every query and
    mutation field passed as a variable."""
    operations = []
    roots = [("query", SCHEMA.query_type), ("mutation", SCHEMA.mutation_type)]
    for keyword, root in roots:
        assert root is not None
        for name, field in root.fields.items():
            if not field.args:
                continue
            definitions = ", ".join(f"${arg}: {field.args[arg].type}" for arg in field.args)
            arguments = ", ".join(f"{arg}: ${arg}" for arg in field.args)
            document = (
                f"{keyword}({definitions}) {{ {name}({arguments}) {_selection(field.type)} }}"
            )
            strategies = {arg: _values(spec.type) for arg, spec in field.args.items()}
            operations.append((name, document, strategies))
    return operations


OPERATIONS = _operations_with_variables()


@st.composite
def documents_with_variables(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    _, document, strategies = draw(st.sampled_from(OPERATIONS))
    variables = {name: draw(strategy) for name, strategy in strategies.items()}
    return document, variables


def _documents(mode: Mode) -> st.SearchStrategy[str]:
    return queries(SCHEMA, custom_scalars=CUSTOM_SCALARS, mode=mode) | mutations(
        SCHEMA, custom_scalars=CUSTOM_SCALARS, mode=mode
    )


async def _answer_holds_the_property(
    http: httpx.AsyncClient, document: str, variables: dict[str, Any], token: str | None
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # The body as a client writes it: lone surrogates as JSON escapes.
    body = json.dumps({"query": document, "variables": variables})
    started = time.perf_counter()
    response = await http.post(
        "/graphql",
        content=body.encode(),
        headers={**headers, "Content-Type": "application/json"},
    )
    elapsed_s = time.perf_counter() - started
    assert response.status_code < 500, (response.status_code, response.text, document)
    assert elapsed_s < ANSWER_BOUND_S, (elapsed_s, document)
    if response.headers.get("content-type", "").startswith("application/json"):
        answer = response.json()
        codes = [error.get("extensions", {}).get("code") for error in answer.get("errors") or []]
        assert "INTERNAL_SERVER_ERROR" not in codes, (answer, document, variables)
        assert None not in codes, (answer, document)
    else:
        assert response.status_code == 400, (response.status_code, response.text)


@settings(FUZZ, max_examples=60)
@given(document=_documents(Mode.POSITIVE))
async def test_generated_documents_anonymous(http: httpx.AsyncClient, document: str) -> None:
    await _answer_holds_the_property(http, document, {}, None)


@settings(FUZZ, max_examples=100)
@given(document=_documents(Mode.POSITIVE))
async def test_generated_documents_as_an_agent(
    http: httpx.AsyncClient, agent_token: str, document: str
) -> None:
    await _answer_holds_the_property(http, document, {}, agent_token)


@settings(FUZZ, max_examples=40)
@given(document=_documents(Mode.NEGATIVE))
async def test_documents_with_a_schema_violation(
    http: httpx.AsyncClient, agent_token: str, document: str
) -> None:
    await _answer_holds_the_property(http, document, {}, agent_token)


@settings(FUZZ, max_examples=40)
@given(case=documents_with_variables())
async def test_generated_variables_anonymous(
    http: httpx.AsyncClient, case: tuple[str, dict[str, Any]]
) -> None:
    await _answer_holds_the_property(http, *case, None)


@settings(FUZZ, max_examples=80)
@given(case=documents_with_variables())
async def test_generated_variables_as_an_agent(
    http: httpx.AsyncClient, agent_token: str, case: tuple[str, dict[str, Any]]
) -> None:
    await _answer_holds_the_property(http, *case, agent_token)


_BODIES = st.one_of(
    st.binary(max_size=200),
    _JUNK.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries(
        {}, optional={"query": _JUNK, "variables": _JUNK, "operationName": _JUNK}
    ).map(lambda value: json.dumps(value).encode()),
    st.integers(min_value=1, max_value=200_000).map(lambda depth: b"[" * depth),
)
_CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "multipart/form-data; boundary=x",
        "application/graphql-response+json",
        "text/plain",
    ]
)


@settings(FUZZ, max_examples=40)
@given(body=_BODIES, content_type=_CONTENT_TYPES, accept=st.sampled_from([JSON_, GRAPHQL_]))
async def test_arbitrary_bodies_are_never_a_server_error(
    http: httpx.AsyncClient, body: bytes, content_type: str, accept: str
) -> None:
    started = time.perf_counter()
    response = await http.post(
        "/graphql", content=body, headers={"Content-Type": content_type, "Accept": accept}
    )
    assert response.status_code < 500, (response.status_code, response.text, body[:100])
    assert time.perf_counter() - started < ANSWER_BOUND_S
    if response.headers.get("content-type", "").startswith(("application/json", GRAPHQL_)):
        errors = response.json().get("errors") or []  # or Starlette's {"detail": ...} 400
        codes = [error.get("extensions", {}).get("code") for error in errors]
        assert "INTERNAL_SERVER_ERROR" not in codes, (response.text, body[:100])


def test_the_fuzzed_schema_is_the_served_one(settings: Settings) -> None:
    served = build_schema(settings)._schema
    assert graphql.print_schema(served) == graphql.print_schema(SCHEMA)
