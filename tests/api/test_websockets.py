"""WebSocket rules over a real uvicorn: the token is checked at connection_init (4403 before
any subscription), caps per process and per user, and a password change or deactivation
closes the user's open sockets at once, subscriptions included."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from app.api.main import create_app
from app.core.config import Settings
from app.db.engine import SessionFactory
from app.db.models import Role
from app.dev.embedded import EmbeddedRedis
from tests.api.helpers import GraphQLClient, upload_ok
from tests.conftest import clear_login_throttle
from tests.factories import PASSWORD, login_at, make_user, serving, tone_bytes

PROTOCOL = [websockets.Subprotocol("graphql-transport-ws")]
SUBSCRIPTION = "subscription($id: ID!) { callStatus(id: $id) { status stage } }"

Server = Callable[..., AbstractAsyncContextManager[str]]


@pytest.fixture
async def serve(settings: Settings, clean_database: None, redis_url: str) -> Server:
    await clear_login_throttle(redis_url)

    @asynccontextmanager
    async def running(**overrides: Any) -> AsyncIterator[str]:
        async with serving(create_app(settings.model_copy(update=overrides))) as address:
            yield address

    return running


async def _init(ws: ClientConnection, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Sends connection_init; the reply, or None when the server closed the socket."""
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    try:
        reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    except websockets.ConnectionClosed:
        return None
    return reply


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _closed_with(ws: ClientConnection) -> int | None:
    """Reads until the server closes the socket (at most 10 s); the close code."""
    try:
        async with asyncio.timeout(10):
            async for _ in ws:
                pass
    except websockets.ConnectionClosed:
        pass
    return ws.close_code


async def test_bad_or_missing_token_closes_the_socket_before_any_subscription(
    sessions: SessionFactory, serve: Server, settings: Settings
) -> None:
    async with serve() as address:
        for payload in ({"Authorization": "Bearer not-a-token"}, {}, {"Authorization": "Basic x"}):
            async with websockets.connect(f"ws://{address}/graphql", subprotocols=PROTOCOL) as ws:
                assert await _init(ws, payload) is None
                assert ws.close_code == 4403, payload
        await make_user(sessions, "agent1")
        token = await login_at(address, "agent1")
        async with websockets.connect(f"ws://{address}/graphql", subprotocols=PROTOCOL) as ws:
            assert await _init(ws, _bearer(token)) == {"type": "connection_ack"}


async def test_a_socket_that_never_sends_connection_init_is_closed_with_4408(
    serve: Server,
) -> None:
    async with serve(ws_connection_init_timeout_s=1.0) as address:
        started = asyncio.get_running_loop().time()
        async with websockets.connect(f"ws://{address}/graphql", subprotocols=PROTOCOL) as ws:
            assert await _closed_with(ws) == 4408
        assert asyncio.get_running_loop().time() - started < 5


async def test_connections_are_capped_per_user_and_per_process(
    sessions: SessionFactory, serve: Server, settings: Settings
) -> None:
    await make_user(sessions, "agent1")
    await make_user(sessions, "agent2")
    async with serve(ws_max_connections=3, ws_max_connections_per_user=2) as address:
        first, second = await login_at(address, "agent1"), await login_at(address, "agent2")
        url = f"ws://{address}/graphql"
        async with (
            websockets.connect(url, subprotocols=PROTOCOL) as a,
            websockets.connect(url, subprotocols=PROTOCOL) as b,
        ):
            assert await _init(a, _bearer(first)) == {"type": "connection_ack"}
            assert await _init(b, _bearer(first)) == {"type": "connection_ack"}
            async with websockets.connect(url, subprotocols=PROTOCOL) as c:
                assert await _init(c, _bearer(first)) is None
                assert c.close_code == 4429
            async with websockets.connect(url, subprotocols=PROTOCOL) as d:
                assert await _init(d, _bearer(second)) == {"type": "connection_ack"}
                # The process holds 3: a fourth is told to come back later.
                async with websockets.connect(url, subprotocols=PROTOCOL) as e:
                    assert await _closed_with(e) == 1013
        # Closed sockets free their places.
        async with websockets.connect(url, subprotocols=PROTOCOL) as again:
            assert await _init(again, _bearer(first)) == {"type": "connection_ack"}


@pytest.mark.parametrize("change", ["changePassword", "resetPassword", "deactivate"])
async def test_credentials_change_closes_open_sockets_and_subscriptions(
    sessions: SessionFactory, serve: Server, settings: Settings, audio_dir: Path, change: str
) -> None:
    await make_user(sessions, "admin", Role.ADMIN)
    await make_user(sessions, "agent1")
    # Two API processes' worth of apps: the change is made on one, the socket is on the other.
    async with serve() as watched, serve() as other:
        token = await login_at(watched, "agent1")
        async with httpx.AsyncClient(base_url=f"http://{watched}") as client:
            call = await upload_ok(client, tone_bytes(audio_dir), token=token)
        async with websockets.connect(f"ws://{watched}/graphql", subprotocols=PROTOCOL) as ws:
            assert await _init(ws, _bearer(token)) == {"type": "connection_ack"}
            await ws.send(
                json.dumps(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {"query": SUBSCRIPTION, "variables": {"id": call["id"]}},
                    }
                )
            )
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert first["type"] == "next"

            async with httpx.AsyncClient(base_url=f"http://{other}") as client:
                gql = GraphQLClient(client)
                await _apply(gql, change, token)
            assert await _closed_with(ws) == 4403
        # Reconnecting with the old token is refused.
        async with websockets.connect(f"ws://{watched}/graphql", subprotocols=PROTOCOL) as ws:
            assert await _init(ws, _bearer(token)) is None
            assert ws.close_code == 4403


async def _apply(gql: GraphQLClient, change: str, agent_token: str) -> None:
    if change == "changePassword":
        result = await gql(
            "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, "
            "newPassword: $n) { accessToken } }",
            {"c": PASSWORD, "n": "a-brand-new-password"},
            token=agent_token,
        )
    else:
        admin = await gql.login("admin")
        me = await gql("{ me { id } }", token=agent_token)
        assert me.data is not None
        agent_id = me.data["me"]["id"]
        if change == "resetPassword":
            result = await gql(
                "mutation($id: ID!) { resetPassword(id: $id, newPassword: "
                '"a-brand-new-password") { id } }',
                {"id": agent_id},
                token=admin,
            )
        else:
            result = await gql(
                "mutation($id: ID!) { updateUser(id: $id, input: {isActive: false}) { id } }",
                {"id": agent_id},
                token=admin,
            )
    assert not result.errors, result.errors


async def test_a_subscription_reports_a_redis_outage_and_recovers(
    sessions: SessionFactory, serve: Server, audio_dir: Path, tmp_path: Path
) -> None:
    """Redis (the live feed) stops under an open `callStatus`: the subscriber is told at once
    (`live: false`, the last state), the socket stays open, and once Redis is back on its
    address an event re-read from the database says `live: true`."""
    own = EmbeddedRedis(tmp_path / "redis")
    own.start()
    try:
        await make_user(sessions, "agent1")
        async with serve(redis_url=f"redis://127.0.0.1:{own.port}/0") as address:
            token = await login_at(address, "agent1")
            async with httpx.AsyncClient(base_url=f"http://{address}") as client:
                call = await upload_ok(client, tone_bytes(audio_dir), token=token)
            query = "subscription($id: ID!) { callStatus(id: $id) { status stage live } }"
            async with websockets.connect(f"ws://{address}/graphql", subprotocols=PROTOCOL) as ws:
                assert await _init(ws, _bearer(token)) == {"type": "connection_ack"}
                await ws.send(
                    json.dumps(
                        {
                            "id": "1",
                            "type": "subscribe",
                            "payload": {"query": query, "variables": {"id": call["id"]}},
                        }
                    )
                )

                async def next_event() -> dict[str, Any]:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    assert message["type"] == "next", message
                    event: dict[str, Any] = message["payload"]["data"]["callStatus"]
                    return event

                queued = {"status": "RUNNING", "stage": "QUEUED"}
                assert await next_event() == {**queued, "live": True}
                own.stop()
                assert await next_event() == {**queued, "live": False}
                own.revive()
                assert await next_event() == {**queued, "live": True}
                assert ws.close_code is None
    finally:
        own.stop()


async def test_a_password_change_missed_during_a_redis_outage_closes_sockets_once_back(
    sessions: SessionFactory, serve: Server, audio_dir: Path, tmp_path: Path
) -> None:
    """The change is made on one API process while Redis is down, so its announcement never
    reaches the process holding the socket: once Redis is back, that process checks its
    sockets' token versions against the database and closes the stale one (4403)."""
    own = EmbeddedRedis(tmp_path / "redis")
    own.start()
    try:
        await make_user(sessions, "agent1")
        redis_url = f"redis://127.0.0.1:{own.port}/0"
        async with serve(redis_url=redis_url) as watched, serve(redis_url=redis_url) as other:
            token = await login_at(watched, "agent1")
            async with websockets.connect(f"ws://{watched}/graphql", subprotocols=PROTOCOL) as ws:
                assert await _init(ws, _bearer(token)) == {"type": "connection_ack"}
                own.stop()
                async with httpx.AsyncClient(base_url=f"http://{other}") as client:
                    await _apply(GraphQLClient(client), "changePassword", token)
                # Nothing can tell the watching process yet.
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(ws.recv(), 1.0)
                own.revive()
                assert await _closed_with(ws) == 4403
    finally:
        own.stop()


async def test_a_reprocessed_or_deleted_calls_subscribers_get_no_events_of_the_superseded_job(
    sessions: SessionFactory, serve: Server, audio_dir: Path, redis_url: str
) -> None:
    """What a worker whose job was superseded could still publish late (its commit came
    before the reprocess, its publish after) never reaches subscribers; a delete ends the
    stream at once."""
    from datetime import UTC, datetime

    from redis.asyncio import Redis
    from sqlalchemy import select

    from app.core.ids import parse_global_id
    from app.db.models import Call, CallStatus, PipelineStage
    from app.services.status import RedisStatusPublisher, StatusEvent

    await make_user(sessions, "agent1")
    redis = Redis.from_url(redis_url)
    publisher = RedisStatusPublisher(redis)
    try:
        async with serve() as address:
            token = await login_at(address, "agent1")
            async with httpx.AsyncClient(base_url=f"http://{address}") as client:
                gql = GraphQLClient(client)
                call = await upload_ok(client, tone_bytes(audio_dir), token=token)
                call_id = parse_global_id(call["id"])[1]

                async def job_token() -> str:
                    async with sessions() as session:
                        job = await session.scalar(select(Call.job_id).where(Call.id == call_id))
                    assert job is not None
                    return job

                async def worker_says(job: str, stage: PipelineStage, progress: float) -> None:
                    await publisher.publish(
                        StatusEvent(
                            call_id=call_id,
                            status=CallStatus.RUNNING,
                            stage=stage,
                            progress=progress,
                            error=None,
                            at=datetime.now(UTC),
                            job=job,
                        )
                    )

                query = "subscription($id: ID!) { callStatus(id: $id) { status stage progress } }"
                async with websockets.connect(
                    f"ws://{address}/graphql", subprotocols=PROTOCOL
                ) as ws:
                    assert await _init(ws, _bearer(token)) == {"type": "connection_ack"}
                    await ws.send(
                        json.dumps(
                            {
                                "id": "1",
                                "type": "subscribe",
                                "payload": {"query": query, "variables": {"id": call["id"]}},
                            }
                        )
                    )

                    async def next_message() -> dict[str, Any]:
                        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
                        return message

                    async def next_stage() -> str:
                        message = await next_message()
                        assert message["type"] == "next", message
                        stage: str = message["payload"]["data"]["callStatus"]["stage"]
                        return stage

                    assert await next_stage() == "QUEUED"
                    first_job = await job_token()
                    await worker_says("call:superseded-long-ago", PipelineStage.TRANSCRIBING, 0.9)
                    await worker_says(first_job, PipelineStage.DECODING, 0.1)
                    assert await next_stage() == "DECODING"

                    reprocess = await gql(
                        "mutation($id: ID!) { reprocessCall(id: $id) { id } }",
                        {"id": call["id"]},
                        token=token,
                    )
                    assert not reprocess.errors, reprocess.errors
                    assert await next_stage() == "QUEUED"
                    # The first job's late publish, then the new job's progress.
                    await worker_says(first_job, PipelineStage.ANALYZING, 0.95)
                    await worker_says(await job_token(), PipelineStage.DIARIZING, 0.3)
                    assert await next_stage() == "DIARIZING"

                    deleted = await gql(
                        "mutation($id: ID!) { deleteCall(id: $id) }",
                        {"id": call["id"]},
                        token=token,
                    )
                    assert not deleted.errors, deleted.errors
                    end = await next_message()
                    assert end["type"] == "next" and end["payload"]["errors"], end
                    assert end["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    finally:
        await redis.aclose()
