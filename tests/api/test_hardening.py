"""What strangers sent, sent again: each request of the adversarial pass, and the answer it
must get now (a bounded, coded refusal, never a hang, a 500 or INTERNAL_SERVER_ERROR)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.api.main import create_app
from app.core.config import Environment, Settings
from app.db.engine import SessionFactory
from app.db.models import User
from app.schema.build import build_schema
from tests.api.helpers import GraphQLClient, upload, upload_ok
from tests.factories import login, make_user, tone_bytes

GRAPHQL_RESPONSE = "application/graphql-response+json"


def fragment_bomb(levels: int) -> str:
    """Each fragment spreads the next twice: 2**levels fields once expanded, in ~1 KB."""
    fragments = " ".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    return f"query {{ ...F0 }} {fragments} fragment F{levels} on Query {{ __typename }}"


async def test_the_fragment_bomb_is_refused_at_once_naming_the_limit(
    gql: GraphQLClient, http: httpx.AsyncClient
) -> None:
    started = time.perf_counter()
    result = await gql(fragment_bomb(30))
    elapsed_s = time.perf_counter() - started
    assert result.codes == ["BAD_USER_INPUT"]
    # 31 fragments: the fragment count is the first limit it meets.
    assert "GRAPHQL_MAX_FRAGMENTS" in result.errors[0]["message"]
    assert result.data is None
    assert elapsed_s < 0.5, elapsed_s
    assert (await http.get("/healthz")).status_code == 200


async def test_a_fragment_bomb_within_the_fragment_count_meets_the_field_limit(
    gql: GraphQLClient,
) -> None:
    started = time.perf_counter()
    result = await gql(fragment_bomb(12))
    assert time.perf_counter() - started < 0.5
    assert result.codes == ["BAD_USER_INPUT"]
    assert "4096 fields" in result.errors[0]["message"]
    assert "GRAPHQL_MAX_FIELDS" in result.errors[0]["message"]


@pytest.mark.parametrize(
    ("document", "setting"),
    [
        (
            "{ calls { edges { node { " + "... on Node { id } agent { " * 11 + "id" + " }" * 15,
            "GRAPHQL_MAX_DEPTH",
        ),
        ("{ " + " ".join(["me { id }"] * 9) + " }", "GRAPHQL_MAX_FIELD_REPEATS"),
        (
            "{ me { ...U } } fragment U on User { " + " ".join(["teams { id name }"] * 9) + " }",
            "GRAPHQL_MAX_FIELD_REPEATS",
        ),
        (
            "{ ...F0 } "
            + " ".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(20))
            + " fragment F20 on Query { __typename }",
            "GRAPHQL_MAX_FRAGMENTS",
        ),
    ],
)
async def test_each_document_limit_is_named_when_exceeded(
    gql: GraphQLClient, agent_token: str, document: str, setting: str
) -> None:
    result = await gql(document, token=agent_token)
    assert result.codes == ["BAD_USER_INPUT"], result
    assert setting in result.errors[0]["message"]


async def test_a_document_within_the_limits_runs(gql: GraphQLClient, agent_token: str) -> None:
    document = (
        "query { me { ...Who id } other: me { ...Who } } fragment Who on User { id username role }"
    )
    result = await gql(document, token=agent_token)
    assert not result.errors, result.errors
    assert result.data is not None and result.data["me"]["username"] == "agent1"


# --- bodies that are not what they claim -----------------------------------------------------


async def test_a_body_that_is_not_utf8_is_a_400_with_a_reason(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql", content=b'{"query":"\xff"}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "not valid UTF-8" in response.text


async def test_json_nested_100000_deep_is_a_400_with_a_reason(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql", content=b"[" * 100_000, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "nested too deeply" in response.text


async def test_multipart_operations_nested_too_deeply_are_a_400(
    http: httpx.AsyncClient, agent_token: str
) -> None:
    response = await http.post(
        "/graphql",
        data={"operations": "[" * 100_000, "map": "{}"},
        files={"0": ("call.wav", b"RIFF", "audio/wav")},
        headers={"Authorization": f"Bearer {agent_token}"},
    )
    assert response.status_code == 400
    assert "nested too deeply" in response.text


async def test_an_operation_name_that_is_not_a_string_is_a_400(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql", json={"query": "{ __typename }", "operationName": {"obj": "ect"}}
    )
    assert response.status_code == 400
    assert "operationName" in response.text


# --- string inputs PostgreSQL cannot store ----------------------------------------------------


async def test_nul_in_the_login_username_is_bad_user_input_naming_it(gql: GraphQLClient) -> None:
    result = await gql('mutation { login(username: "a\\u0000b", password: "x") { accessToken } }')
    assert result.codes == ["BAD_USER_INPUT"]
    assert "username" in result.errors[0]["message"]


async def test_nul_in_a_login_variable_is_bad_user_input_naming_it(gql: GraphQLClient) -> None:
    result = await gql(
        "mutation($u: String!) { login(username: $u, password: $u) { accessToken } }",
        {"u": "a\x00b"},
    )
    assert result.codes == ["BAD_USER_INPUT"]
    assert "$u" in result.errors[0]["message"]


async def _user_count(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int((await session.execute(select(func.count()).select_from(User))).scalar_one())


async def test_nul_in_create_user_full_name_is_refused_in_literals_and_variables(
    gql: GraphQLClient, admin_token: str, sessions: SessionFactory
) -> None:
    before = await _user_count(sessions)
    literal = await gql(
        'mutation { createUser(input: {username: "nul1", password: "long enough password 1", '
        'fullName: "Ann\\u0000"}) { id } }',
        token=admin_token,
    )
    assert literal.codes == ["BAD_USER_INPUT"]
    assert "input.fullName" in literal.errors[0]["message"]
    variables = await gql(
        "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }",
        {"input": {"username": "nul2", "password": "long enough password 1", "fullName": "A\x00"}},
        token=admin_token,
    )
    assert variables.codes == ["BAD_USER_INPUT"]
    assert "$input.fullName" in variables.errors[0]["message"]
    assert await _user_count(sessions) == before


async def test_a_lone_surrogate_in_a_variable_is_bad_user_input(
    http: httpx.AsyncClient, admin_token: str
) -> None:
    # Valid JSON ("\ud800" escapes a lone surrogate) that no UTF-8 encoder can send on.
    body = (
        '{"query": "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }", '
        '"variables": {"input": {"username": "x\\ud800", "password": "long enough password 1"}}}'
    )
    response = await http.post(
        "/graphql",
        content=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {admin_token}"},
    )
    assert response.status_code == 200
    errors = response.json()["errors"]
    assert [error["extensions"]["code"] for error in errors] == ["BAD_USER_INPUT"]
    assert "$input.username" in errors[0]["message"]


async def test_a_lone_surrogate_inside_the_document_is_bad_user_input(
    http: httpx.AsyncClient,
) -> None:
    # The JSON escape decodes to a lone surrogate inside the GraphQL string literal.
    body = (
        '{"query": "mutation { login(username: \\"\\ud800\\", password: \\"x\\") '
        '{ accessToken } }"}'
    )
    response = await http.post(
        "/graphql", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    errors = response.json()["errors"]
    assert [error["extensions"]["code"] for error in errors] == ["BAD_USER_INPUT"]


# --- operations HTTP does not run -------------------------------------------------------------


@pytest.mark.parametrize(("accept", "status"), [("application/json", 200), (GRAPHQL_RESPONSE, 400)])
async def test_a_subscription_over_http_post_is_refused_with_a_code(
    http: httpx.AsyncClient, agent_token: str, accept: str, status: int
) -> None:
    response = await http.post(
        "/graphql",
        json={"query": 'subscription { callStatus(id: "x") { status } }'},
        headers={"Authorization": f"Bearer {agent_token}", "Accept": accept},
    )
    assert response.status_code == status
    body = response.json()
    assert [error["extensions"]["code"] for error in body["errors"]] == ["BAD_USER_INPUT"]
    assert "WebSocket" in body["errors"][0]["message"]


async def test_a_subscription_over_http_get_is_refused_with_a_code(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get(
        "/graphql",
        params={"query": 'subscription { callStatus(id: "x") { status } }'},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200
    assert [error["extensions"]["code"] for error in response.json()["errors"]] == [
        "BAD_USER_INPUT"
    ]


async def test_a_mutation_over_http_get_is_a_400(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/graphql",
        params={"query": 'mutation { login(username: "a", password: "b") { accessToken } }'},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400
    assert "mutations are not allowed when using GET" in response.text


async def test_two_operations_without_an_operation_name_fail_as_the_spec_says(
    http: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    document = "query A { a: __typename } query B { b: __typename }"
    unnamed = await gql(document)
    assert unnamed.codes == ["BAD_USER_INPUT"]
    assert unnamed.data is None
    assert "operationName" in unnamed.errors[0]["message"]
    named = await http.post("/graphql", json={"query": document, "operationName": "B"})
    assert named.json() == {"data": {"b": "Query"}}


# --- GraphQL over HTTP: application/graphql-response+json -------------------------------------


@pytest.mark.parametrize(
    "document",
    ["{", "{ noSuchField }", "query A { __typename } query B { __typename }"],
    ids=["parse", "validation", "ambiguous"],
)
async def test_graphql_response_json_answers_request_errors_with_400_and_no_data(
    http: httpx.AsyncClient, document: str
) -> None:
    response = await http.post(
        "/graphql", json={"query": document}, headers={"Accept": GRAPHQL_RESPONSE}
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    body = response.json()
    assert "data" not in body
    assert [error["extensions"]["code"] for error in body["errors"]] == ["BAD_USER_INPUT"]


async def test_graphql_response_json_keeps_200_for_field_errors(http: httpx.AsyncClient) -> None:
    # Unauthenticated `me`: the error has a path, execution ran, data is null.
    response = await http.post(
        "/graphql", json={"query": "{ me { id } }"}, headers={"Accept": GRAPHQL_RESPONSE}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    body = response.json()
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_application_json_answers_are_unchanged(http: httpx.AsyncClient) -> None:
    for accept in ("application/json", "*/*", None):
        headers = {"Accept": accept} if accept else {}
        response = await http.post("/graphql", json={"query": "{"}, headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


# --- the request budget -----------------------------------------------------------------------


@pytest.fixture
async def hurried_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """An API whose request budget no database round trip fits in; uploads keep theirs."""
    hurried = settings.model_copy(update={"graphql_request_budget_s": 1e-6})
    application = create_app(hurried)
    async with application.router.lifespan_context(application):
        yield application


async def test_an_upload_has_its_own_budget(
    hurried_app: FastAPI, agent_token: str, audio_dir: Path
) -> None:
    # Signed in on the ordinary app: the hurried one has no time for a login.
    transport = httpx.ASGITransport(app=hurried_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        call = await upload_ok(client, tone_bytes(audio_dir), token=agent_token)
    assert call["filename"] == "call.wav"


async def test_an_upload_over_its_budget_is_an_error_naming_the_limit(
    settings: Settings, clean_database: None, sessions: SessionFactory, audio_dir: Path
) -> None:
    await make_user(sessions, "uploader")
    application = create_app(settings.model_copy(update={"graphql_upload_budget_s": 1e-6}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            token = await login(client, "uploader")
            status, result = await upload(client, tone_bytes(audio_dir), token=token)
    assert status == 200
    assert result.codes == ["BAD_USER_INPUT"]
    assert "GRAPHQL_UPLOAD_BUDGET_S" in result.errors[0]["message"]


async def test_a_request_over_its_budget_is_an_error_naming_the_limit(
    hurried_app: FastAPI, clean_database: None
) -> None:
    transport = httpx.ASGITransport(app=hurried_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post(
            "/graphql",
            json={
                "query": "mutation($u: String!) { login(username: $u, password: $u) { "
                "accessToken } }",
                "variables": {"u": "nobody"},
            },
        )
    assert response.status_code == 200
    errors = response.json()["errors"]
    assert [error["extensions"]["code"] for error in errors] == ["BAD_USER_INPUT"]
    assert "GRAPHQL_REQUEST_BUDGET_S" in errors[0]["message"]


def test_the_guard_stays_linear_on_long_fragment_chains() -> None:
    """The analysis itself, without HTTP: 2**200 expanded fields measured in well under the
    few milliseconds a document may hold the event loop."""
    from graphql import parse

    from app.schema.document_guard import DocumentLimits, check_limits

    limits = DocumentLimits(max_depth=12, max_fields=500, max_field_repeats=8, max_fragments=300)
    document = parse(fragment_bomb(200))
    started = time.perf_counter()
    errors = check_limits(document, limits)
    elapsed_s = time.perf_counter() - started
    assert errors and "GRAPHQL_MAX_FIELDS" in errors[0].message
    assert elapsed_s < 0.05, elapsed_s


def test_string_checks_name_nested_inputs() -> None:
    from graphql import parse

    from app.schema.document_guard import unstorable_literals, unstorable_variables

    literal = unstorable_literals(
        parse('mutation { f(input: {teams: [{name: "ok"}, {name: "b\\u0000d"}]}) }')
    )
    assert [error.message.split(" contains")[0] for error in literal] == [
        "Argument input.teams.name"
    ]
    variable = unstorable_variables({"input": {"teams": [{"name": "ok"}, {"name": "b\x00"}]}})
    assert [error.message.split(" contains")[0] for error in variable] == [
        "Variable $input.teams[1].name"
    ]
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    assert unstorable_variables({"deep": deep}) == []


async def test_costly_validation_runs_on_a_validation_thread_with_a_time_limit() -> None:
    import threading

    from graphql import ASTValidationRule, parse

    from app.schema.document_guard import validated_off_loop

    schema = build_schema(Settings(environment=Environment.TEST, jwt_key="k" * 48))._schema
    threads: list[str] = []

    class RecordsItsThread(ASTValidationRule):
        def enter_document(self, *_: object) -> None:
            threads.append(threading.current_thread().name)

    document = parse("{ ...F } fragment F on Query { __typename }")
    assert await validated_off_loop(schema, document, (RecordsItsThread,)) == []
    assert threads and threads[0].startswith("graphql-validation")
    assert threads[0] != threading.current_thread().name

    class Slow(ASTValidationRule):
        def enter_document(self, *_: object) -> None:
            time.sleep(0.3)  # a validation slower than the timeout: the case under test

    errors = await validated_off_loop(schema, document, (Slow,), timeout_s=0.05)
    assert [error.message for error in errors] == [
        "The document took longer than 0.05 s to validate; send a smaller one"
    ]


def test_only_documents_whose_validation_can_grow_quadratically_leave_the_loop() -> None:
    from graphql import parse

    from app.schema.document_guard import DocumentLimits, measure_document

    limits = DocumentLimits(max_depth=12, max_fields=500, max_field_repeats=8, max_fragments=16)
    simple = measure_document(
        parse("{ me { id username } calls { edges { node { id } } } }"), limits
    )
    assert not simple.errors and not simple.validation_is_quadratic
    for document in (
        "{ ...F } fragment F on Query { __typename }",
        "{ me { id } me { username } }",
    ):
        measured = measure_document(parse(document), limits)
        assert not measured.errors and measured.validation_is_quadratic, document
