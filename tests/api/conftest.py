"""API fixtures: the real app over ASGI, users, and a small GraphQL client."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.db.engine import create_engine, create_session_factory
from app.db.models import Role
from app.services.users import NewUser, create_user

PASSWORD = "correct-horse-battery"


@dataclass
class GraphQLResponse:
    status_code: int
    data: dict[str, Any] | None
    errors: list[dict[str, Any]]

    @property
    def codes(self) -> list[str]:
        return [error.get("extensions", {}).get("code") for error in self.errors]


@dataclass
class GraphQLClient:
    http: httpx.AsyncClient

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> GraphQLResponse:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body = response.json()
        return GraphQLResponse(response.status_code, body.get("data"), body.get("errors") or [])

    async def login(self, username: str, password: str = PASSWORD) -> str:
        result = await self(
            "mutation($u: String!, $p: String!) { login(username: $u, password: $p) "
            "{ accessToken } }",
            {"u": username, "p": password},
        )
        assert not result.errors, result.errors
        assert result.data is not None
        token: str = result.data["login"]["accessToken"]
        return token


async def make_user(
    settings: Settings, username: str, role: Role = Role.AGENT, password: str = PASSWORD
) -> None:
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            await create_user(
                session,
                NewUser(username=username, password=password, role=role),
                password_min_length=settings.password_min_length,
            )
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the calls tests write the small recordings they generate."""
    return tmp_path_factory.mktemp("api-audio")


@pytest.fixture
async def admin_token(gql: GraphQLClient, settings: Settings) -> str:
    await make_user(settings, "admin", Role.ADMIN)
    return await gql.login("admin")


@pytest.fixture
async def agent_token(gql: GraphQLClient, settings: Settings) -> str:
    await make_user(settings, "agent1")
    return await gql.login("agent1")
