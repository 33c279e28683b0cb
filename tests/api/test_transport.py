"""The GraphQL endpoint's transport: malformed bodies are 400s with a clear message, uploads
map one file to one variable, and production serves no schema hints or OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.api.main import create_app
from app.core.config import Environment, Settings
from tests.api.helpers import UPLOAD, GraphQLClient, call_count
from tests.factories import tone_bytes


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("null", "must be a JSON object"),
        ('"{ me { id } }"', "must be a JSON object"),
        ("42", "must be a JSON object"),
        ("{not json", "Unable to parse"),
        ('{"query": 5}', "`query` must be a string"),
        ('{"query": "{ me { id } }", "variables": [1]}', "`variables` must be an object"),
    ],
)
async def test_malformed_json_bodies_are_400_with_a_message(
    http: httpx.AsyncClient, body: str, expected: str
) -> None:
    response = await http.post(
        "/graphql", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert expected in response.text


def _operations(variables: dict[str, object] | None = None) -> str:
    return json.dumps({"query": UPLOAD, "variables": variables or {"file": None}})


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"map": '{"0": ["variables.file"]}'}, "no `operations`"),
        ({"operations": "null", "map": '{"0": ["variables.file"]}'}, "one JSON object"),
        ({"operations": "{oops", "map": '{"0": ["variables.file"]}'}, "not valid JSON"),
        ({"operations": _operations(), "map": '[["variables.file"]]'}, "must be a JSON object"),
        ({"operations": _operations(), "map": '{"0": "variables.file"}'}, "must be a list"),
        ({"operations": _operations(), "map": '{"7": ["variables.file"]}'}, "was not sent"),
        ({"operations": _operations(), "map": '{"0": ["query"]}'}, "point into `variables`"),
        ({"operations": _operations(), "map": '{"0": ["variables.a.b"]}'}, "does not name"),
    ],
)
async def test_malformed_multipart_bodies_are_400_with_a_message(
    http: httpx.AsyncClient, agent_token: str, form: dict[str, str], expected: str
) -> None:
    response = await http.post(
        "/graphql",
        data=form,
        files={"0": ("call.wav", b"RIFF....", "audio/wav")},
        headers={"Authorization": f"Bearer {agent_token}"},
    )
    assert response.status_code == 400, response.text
    assert expected in response.text


async def test_one_file_feeding_two_uploads_is_refused_and_creates_nothing(
    http: httpx.AsyncClient, agent_token: str, app: FastAPI, audio_dir: Path
) -> None:
    query = (
        "mutation($a: Upload!, $b: Upload!) { first: uploadCall(file: $a) { id } "
        "second: uploadCall(file: $b) { id } }"
    )
    response = await http.post(
        "/graphql",
        data={
            "operations": json.dumps({"query": query, "variables": {"a": None, "b": None}}),
            "map": json.dumps({"0": ["variables.a", "variables.b"]}),
        },
        files={"0": ("call.wav", tone_bytes(audio_dir), "audio/wav")},
        headers={"Authorization": f"Bearer {agent_token}"},
    )
    assert response.status_code == 400
    assert "fill one variable only" in response.text
    assert await call_count(app) == 0


async def test_an_upload_variable_that_is_not_a_file_is_bad_user_input(
    gql: GraphQLClient, agent_token: str
) -> None:
    for value in ("not a file", {"name": "x"}, 5):
        result = await gql(UPLOAD, {"file": value}, token=agent_token)
        assert result.codes == ["BAD_USER_INPUT"], (value, result.errors)
        assert "multipart upload" in result.errors[0]["message"]


@pytest.fixture(scope="module")
async def production_app(settings: Settings) -> AsyncIterator[FastAPI]:
    production = settings.model_copy(update={"environment": Environment.PRODUCTION})
    application = create_app(production)
    async with application.router.lifespan_context(application):
        yield application


async def test_production_gives_no_schema_hints_and_no_openapi(
    production_app: FastAPI, http: httpx.AsyncClient, agent_token: str
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=production_app), base_url="http://testserver"
    ) as client:
        prod = GraphQLClient(client)
        for document in ("{ cal { id } }", "{ calls(frist: 1) { totalCount } }"):
            for token in (None, agent_token):
                result = await prod(document, token=token)
                assert result.codes == ["BAD_USER_INPUT"]
                message = result.errors[0]["message"]
                assert "Did you mean" not in message and "'call'" not in message, message
        enum = await prod(
            "query($s: CallStatus) { calls(filter: {status: $s}) { totalCount } }",
            {"s": "SUCCES"},
            token=agent_token,
        )
        assert enum.codes == ["BAD_USER_INPUT"]
        assert "SUCCESS" not in enum.errors[0]["message"]
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert (await client.get(path)).status_code == 404, path

    # Development keeps the hints (introspection is on there anyway).
    dev = await GraphQLClient(http)("{ cal { id } }", token=agent_token)
    assert "Did you mean" in dev.errors[0]["message"]
