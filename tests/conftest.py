"""Session-wide fixtures: shared audio, and real embedded PostgreSQL and Redis started once
per test session with the schema built by Alembic. Domain fixtures live in each folder's
conftest."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from app.auth import passwords
from app.core.config import Environment, Settings
from app.dev.embedded import EmbeddedServices

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE = "ovozly_test"


def shared_audio_dir() -> Path:
    return Path(os.environ.get("OVOZLY_TEST_AUDIO", REPO_ROOT.parent / "shared" / "data" / "audio"))


@pytest.fixture(scope="session")
def test_audio_dir() -> Path:
    """The shared real-speech recordings; tests that need them skip where they are absent."""
    directory = shared_audio_dir()
    if not (directory / "SOURCES.md").is_file():
        pytest.skip(f"shared test audio not found at {directory} (set OVOZLY_TEST_AUDIO)")
    return directory


@pytest.fixture(scope="session")
def embedded_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServices]:
    services = EmbeddedServices(tmp_path_factory.mktemp("embedded"))
    services.start(None, None)
    yield services
    services.stop()


@pytest.fixture(scope="session")
def database_url(embedded_services: EmbeddedServices) -> str:
    """A fresh database built by `alembic upgrade head`, as production builds it."""
    from app.db.migrations import upgrade_head

    postgres = embedded_services.postgres
    assert postgres is not None
    postgres.psql(f"DROP DATABASE IF EXISTS {TEST_DATABASE}; CREATE DATABASE {TEST_DATABASE};")
    url = postgres.url_for(TEST_DATABASE)
    upgrade_head(url)
    return url


@pytest.fixture(scope="session")
def redis_url(embedded_services: EmbeddedServices) -> str:
    assert embedded_services.redis is not None and embedded_services.redis.port is not None
    return f"redis://127.0.0.1:{embedded_services.redis.port}/0"


@pytest.fixture(scope="session")
def settings(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    configured = Settings(
        environment=Environment.TEST,
        database_url=database_url,
        redis_url=redis_url,
        jwt_key=secrets.token_urlsafe(48),
        data_dir=tmp_path_factory.mktemp("data"),
        cors_origins=["http://app.example"],
        # Real argon2id at a test-sized cost; production uses the RFC 9106 profile.
        argon2_time_cost=1,
        argon2_memory_kib=8 * 1024,
        argon2_parallelism=1,
    )
    passwords.configure_from(configured)
    return configured


async def truncate_all(database_url: str) -> None:
    from app.db.base import Base
    from app.db.engine import create_engine

    engine = create_engine(database_url, pool_size=1)
    try:
        tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    """One engine for the whole session: factories and service tests open sessions on it."""
    from app.db.engine import create_engine, create_session_factory

    engine = create_engine(database_url, pool_size=2)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def clean_database(database_url: str) -> None:
    """Isolation per test: every table emptied before the test runs."""
    await truncate_all(database_url)


# --- the real app over ASGI ------------------------------------------------------------------

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI

    from app.api.resources import Resources
    from app.db.engine import SessionFactory
    from tests.api.helpers import GraphQLClient
    from tests.factories import Person


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    from app.api.main import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def clear_login_throttle(redis_url: str) -> None:
    """Failed logins are counted in Redis per username and client address (all ASGI tests
    share one address): each test starts unthrottled."""
    from redis.asyncio import Redis

    from app.auth.throttle import KEY_PREFIX

    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(f"{KEY_PREFIX}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def http(
    app: FastAPI, clean_database: None, redis_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    import httpx

    await clear_login_throttle(redis_url)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def gql(http: httpx.AsyncClient) -> GraphQLClient:
    from tests.api.helpers import GraphQLClient

    return GraphQLClient(http)


# --- people: an admin and two agents, signed in -----------------------------------------------


@pytest.fixture
def resources(app: FastAPI) -> Resources:
    """The app's own resources (its session factory and storage)."""
    resources: Resources = app.state.resources
    return resources


@pytest.fixture
async def admin(gql: GraphQLClient, resources: Resources) -> Person:
    from app.db.models import Role
    from tests.factories import make_person

    return await make_person(gql, resources.sessions, "admin", Role.ADMIN)


@pytest.fixture
async def dilnoza(gql: GraphQLClient, resources: Resources) -> Person:
    from app.db.models import Role
    from tests.factories import make_person

    return await make_person(gql, resources.sessions, "dilnoza", Role.AGENT)


@pytest.fixture
async def aziz(gql: GraphQLClient, resources: Resources) -> Person:
    from app.db.models import Role
    from tests.factories import make_person

    return await make_person(gql, resources.sessions, "aziz", Role.AGENT)
