"""Signing in through the `login` mutation: over ASGI, or at the address of a real server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from tests.factories.users import PASSWORD

if TYPE_CHECKING:
    from tests.api.helpers import GraphQLClient, GraphQLResponse

LOGIN = (
    "mutation($u: String!, $p: String!) { login(username: $u, password: $p) "
    "{ accessToken tokenType expiresIn user { username role } } }"
)


async def login(http: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    """An access token from the `login` mutation: the one login helper of tests and bench."""
    response = await http.post(
        "/graphql", json={"query": LOGIN, "variables": {"u": username, "p": password}}
    )
    body = response.json()
    assert not body.get("errors"), body.get("errors")
    token: str = body["data"]["login"]["accessToken"]
    return token


async def login_at(address: str, username: str, password: str = PASSWORD) -> str:
    """`login` against a server listening at `address` (`host:port`), as a browser would."""
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        return await login(client, username, password)


async def login_attempt(gql: GraphQLClient, username: str, password: str) -> GraphQLResponse:
    """One `login` as a client sends it, whatever the outcome (for tests of refusals)."""
    return await gql(LOGIN, {"u": username, "p": password})
