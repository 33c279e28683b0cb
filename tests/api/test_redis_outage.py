"""The API keeps answering while Redis is down: queries, logins (unthrottled, logged) and
uploads (the job is enqueued later by the recovery sweep), and is ready again once Redis
is back on its address."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.api.main import create_app
from app.core.config import Settings
from app.db.engine import SessionFactory
from app.dev.embedded import EmbeddedRedis
from tests.api.helpers import GraphQLClient, upload
from tests.factories import make_user, tone_bytes


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    redis = EmbeddedRedis(tmp_path / "redis")
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
async def outage_app(
    settings: Settings, own_redis: EmbeddedRedis, clean_database: None
) -> AsyncIterator[FastAPI]:
    application = create_app(
        settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{own_redis.port}/0"})
    )
    async with application.router.lifespan_context(application):
        yield application


async def test_queries_logins_and_uploads_are_answered_while_redis_is_down(
    sessions: SessionFactory,
    outage_app: FastAPI,
    own_redis: EmbeddedRedis,
    settings: Settings,
    audio_dir: Path,
) -> None:
    await make_user(sessions, "agent1")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=outage_app), base_url="http://testserver"
    ) as client:
        gql = GraphQLClient(client)
        token = await gql.login("agent1")
        own_redis.stop()

        started = time.perf_counter()
        me = await gql("{ me { username } calls { totalCount } }", token=token)
        assert me.data == {"me": {"username": "agent1"}, "calls": {"totalCount": 0}}, me.errors
        assert await gql.login("agent1")
        status, uploaded = await upload(client, tone_bytes(audio_dir), token=token)
        assert status == 200 and not uploaded.errors, uploaded.errors
        assert time.perf_counter() - started < 10
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["redis"] == "unreachable"

        own_redis.start()  # the same port
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.json()
        assert not (await gql("{ me { username } }", token=token)).errors
