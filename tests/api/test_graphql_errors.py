from __future__ import annotations

import httpx

from tests.api.helpers import GraphQLClient


async def test_malformed_documents_are_bad_user_input(gql: GraphQLClient, agent_token: str) -> None:
    syntax = await gql("{ me { id ", token=agent_token)
    assert syntax.codes == ["BAD_USER_INPUT"]
    unknown = await gql("{ me { password } }", token=agent_token)
    assert unknown.codes == ["BAD_USER_INPUT"]
    wrong_variable = await gql("query($id: ID!) { node(id: $id) { id } }", {}, token=agent_token)
    assert wrong_variable.codes == ["BAD_USER_INPUT"]


async def test_depth_alias_and_token_limits(gql: GraphQLClient, agent_token: str) -> None:
    deep = "{ me { " + "... on User { " * 20 + "id" + " }" * 20 + " } }"
    nested = '{ node(id: "x") { ...on Node { ' * 14 + "id" + " } }" * 14 + " }"
    aliases = "{ " + " ".join(f"a{i}: me {{ id }}" for i in range(40)) + " }"
    tokens = "{ me { " + " ".join(["id"] * 3000) + " } }"
    for document in (nested, aliases, tokens):
        result = await gql(document, token=agent_token)
        assert result.codes and set(result.codes) == {"BAD_USER_INPUT"}, (document[:40], result)
    assert deep  # inline fragments on the same level do not add depth; kept for contrast


async def test_graphiql_health_and_readiness(http: httpx.AsyncClient) -> None:
    page = await http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert {key: body[key] for key in ("status", "database", "redis")} == {
        "status": "ok",
        "database": "ok",
        "redis": "ok",
    }
    # No worker runs beside this API: ready without one, unless one is required.
    assert body["workers"]["ready"] == 0
    assert (await http.get("/readyz", params={"require_worker": "true"})).status_code == 503


async def test_cors_allows_only_configured_origins(http: httpx.AsyncClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    allowed = await http.options("/graphql", headers={"Origin": "http://app.example", **preflight})
    assert allowed.headers.get("access-control-allow-origin") == "http://app.example"
    denied = await http.options("/graphql", headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in denied.headers


async def test_introspection_and_graphiql_are_off_in_production_unless_enabled() -> None:
    from app.core.config import Environment, Settings
    from app.schema.build import build_schema

    strong = "k" * 48
    production = Settings(
        environment=Environment.PRODUCTION, jwt_key=strong, public_base_url="https://o.example"
    )
    assert not production.graphiql_enabled
    # The schema's extensions are async (validation may run off the loop): execute, not
    # execute_sync.
    result = await build_schema(production).execute("{ __schema { queryType { name } } }")
    assert result.errors
    enabled = Settings(
        environment=Environment.PRODUCTION,
        jwt_key=strong,
        public_base_url="https://o.example",
        graphql_introspection=True,
    )
    assert not (await build_schema(enabled).execute("{ __schema { queryType { name } } }")).errors


def test_errors_raised_while_executing_are_masked_as_internal() -> None:
    from graphql import GraphQLError

    from app.schema.errors import classify

    serialisation = GraphQLError("Int cannot represent non 32-bit value: 3000000000", path=["x"])
    masked = classify(serialisation)
    assert masked.extensions == {"code": "INTERNAL_SERVER_ERROR"}
    assert "3000000000" not in masked.message
    document = classify(GraphQLError("Syntax Error: Expected Name"))
    assert document.extensions == {"code": "BAD_USER_INPUT"}
