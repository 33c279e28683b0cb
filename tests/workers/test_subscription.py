"""callStatus over a real uvicorn on loopback with a real graphql-transport-ws client, while
a burst-mode worker processes the call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from app.api.main import create_app
from app.api.resources import Resources
from app.core.config import Settings
from app.core.ids import to_global_id
from app.db.engine import SessionFactory
from app.workers.processor import CallProcessor
from tests.factories import login_at, make_user, serving, uploaded_call
from tests.workers.helpers import run_worker_burst

SUBSCRIPTION = """
subscription($id: ID!) {
  callStatus(id: $id) {
    callId status stage progress error at
    call { id status segments { speaker text words { text } } analysis { language } }
  }
}
"""


@pytest.fixture
async def server(settings: Settings, http: httpx.AsyncClient) -> AsyncIterator[str]:
    async with serving(create_app(settings)) as address:
        yield address


async def _subscribe(
    address: str, token: str, call_global_id: str, started: asyncio.Event | None = None
) -> list[dict[str, Any]]:
    """Every message after connection_ack, until complete or error."""
    received: list[dict[str, Any]] = []
    async with websockets.connect(
        f"ws://{address}/graphql", subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
    ) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": SUBSCRIPTION, "variables": {"id": call_global_id}},
                }
            )
        )
        async with asyncio.timeout(240):
            while True:
                message = json.loads(await ws.recv())
                received.append(message)
                if started is not None:
                    started.set()
                if message["type"] in {"complete", "error"}:
                    return received


@pytest.mark.slow
def _error_codes(messages: list[dict[str, Any]]) -> list[str]:
    codes = []
    for message in messages:
        if message["type"] == "error":
            errors = message["payload"]
        elif message["type"] == "next":
            errors = message["payload"].get("errors") or []
        else:
            continue
        codes += [error["extensions"]["code"] for error in errors]
    return codes


async def test_subscriber_sees_queued_through_success_then_complete(
    server: str,
    settings: Settings,
    processor: CallProcessor,
    short_speech: Path,
    app: Any,
) -> None:
    resources: Resources = app.state.resources
    await resources.redis.flushdb()
    owner = (await make_user(resources.sessions, "agent1")).id
    token = await login_at(server, "agent1")
    call = await uploaded_call(resources, owner, short_speech)
    started = asyncio.Event()
    subscriber = asyncio.create_task(
        _subscribe(server, token, to_global_id("Call", call.id), started)
    )
    await asyncio.wait_for(started.wait(), 60)
    await run_worker_burst(settings, processor)
    messages = await subscriber

    assert messages[-1]["type"] == "complete"
    events = [m["payload"]["data"]["callStatus"] for m in messages if m["type"] == "next"]
    assert events[0]["status"] == "RUNNING"
    assert events[0]["stage"] == "QUEUED"
    assert events[-1]["status"] == "SUCCESS"
    assert events[-1]["stage"] == "DONE"
    stages = [e["stage"] for e in events]
    assert {"DECODING", "TRANSCRIBING"} <= set(stages)
    order = ["QUEUED", "DECODING", "DIARIZING", "TRANSCRIBING", "ANALYZING", "DONE"]
    assert [order.index(s) for s in stages] == sorted(order.index(s) for s in stages)
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress)
    final_call = events[-1]["call"]
    assert final_call["status"] == "SUCCESS"
    assert "americans" in " ".join(s["text"] for s in final_call["segments"]).lower()
    assert final_call["analysis"]["language"] == "en"


@pytest.mark.slow
async def test_failing_call_streams_fail_with_error_and_others_cannot_subscribe(
    sessions: SessionFactory,
    server: str,
    settings: Settings,
    processor: CallProcessor,
    garbage_audio: Path,
    app: Any,
) -> None:
    resources: Resources = app.state.resources
    await resources.redis.flushdb()
    owner = (await make_user(resources.sessions, "agent1")).id
    await make_user(sessions, "agent2")
    token = await login_at(server, "agent1")
    intruder = await login_at(server, "agent2")
    call = await uploaded_call(resources, owner, garbage_audio, probe=False)
    call_id = to_global_id("Call", call.id)

    refused = await _subscribe(server, intruder, call_id)
    assert _error_codes(refused) == ["NOT_FOUND"]
    assert not any(m["type"] == "next" and m["payload"].get("data") for m in refused)

    # A bad token never gets as far as a subscription: connection_init closes the socket.
    async with websockets.connect(
        f"ws://{server}/graphql", subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
    ) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer x"}})
        )
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4403

    started = asyncio.Event()
    subscriber = asyncio.create_task(_subscribe(server, token, call_id, started))
    await asyncio.wait_for(started.wait(), 60)
    await run_worker_burst(settings, processor)
    messages = await subscriber
    events = [m["payload"]["data"]["callStatus"] for m in messages if m["type"] == "next"]
    assert messages[-1]["type"] == "complete"
    assert events[-1]["status"] == "FAIL"
    assert events[-1]["error"]


async def test_websocket_handshake_checks_the_origin_like_cors(
    sessions: SessionFactory, server: str, settings: Settings
) -> None:
    await make_user(sessions, "agent1")
    token = await login_at(server, "agent1")
    protocol = [websockets.Subprotocol("graphql-transport-ws")]
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(
            f"ws://{server}/graphql",
            subprotocols=protocol,
            origin=websockets.Origin("http://evil.example"),
        ):
            pass
    assert refused.value.response.status_code == 403
    async with websockets.connect(
        f"ws://{server}/graphql",
        subprotocols=protocol,
        origin=websockets.Origin("http://app.example"),
    ) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"


async def test_deleting_a_watched_call_ends_it_and_deactivation_reaches_open_sockets(
    server: str, settings: Settings, short_speech: Path, app: Any
) -> None:
    from sqlalchemy import update

    from app.db.models import User

    resources: Resources = app.state.resources
    await resources.redis.flushdb()
    owner = (await make_user(resources.sessions, "agent1")).id
    token = await login_at(server, "agent1")
    call = await uploaded_call(resources, owner, short_speech, enqueue=False)
    call_id = to_global_id("Call", call.id)

    started = asyncio.Event()
    watcher = asyncio.create_task(_subscribe(server, token, call_id, started))
    await asyncio.wait_for(started.wait(), 60)
    async with httpx.AsyncClient(base_url=f"http://{server}") as client:
        deleted = await client.post(
            "/graphql",
            json={
                "query": "mutation($id: ID!) { deleteCall(id: $id) }",
                "variables": {"id": call_id},
            },
            headers={"Authorization": f"Bearer {token}"},
        )
    assert deleted.json()["data"] == {"deleteCall": call_id}
    messages = await watcher
    assert messages[0]["payload"]["data"]["callStatus"]["stage"] == "QUEUED"
    assert _error_codes(messages) == ["NOT_FOUND"]

    other = await uploaded_call(resources, owner, short_speech, enqueue=False)
    async with websockets.connect(
        f"ws://{server}/graphql", subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
    ) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        async with resources.sessions() as session, session.begin():
            await session.execute(update(User).where(User.id == owner).values(is_active=False))
        await ws.send(
            json.dumps(
                {
                    "id": "2",
                    "type": "subscribe",
                    "payload": {
                        "query": SUBSCRIPTION,
                        "variables": {"id": to_global_id("Call", other.id)},
                    },
                }
            )
        )
        replies: list[dict[str, Any]] = []
        async with asyncio.timeout(30):
            while not replies or replies[-1]["type"] not in {"complete", "error"}:
                replies.append(json.loads(await ws.recv()))
    assert _error_codes(replies) == ["UNAUTHENTICATED"]


async def _open_subscription(
    address: str, token: str, query: str, call_global_id: str
) -> websockets.ClientConnection:
    ws = await websockets.connect(
        f"ws://{address}/graphql", subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
    )
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(
        json.dumps(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": query, "variables": {"id": call_global_id}},
            }
        )
    )
    first = json.loads(await ws.recv())
    assert first["type"] == "next" and not first["payload"].get("errors"), first
    return ws


async def test_an_event_reads_the_call_once_per_process_for_all_its_subscribers(
    server: str, settings: Settings, short_speech: Path, app: Any
) -> None:
    """Many watchers: one status event, 12 agent and 3 admin subscribers with
    different selections: the call and its agent are read once, and each viewer gets what
    their own selection asks for."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from app.db.models import PipelineStage, Role
    from app.services import calls as call_service
    from app.services.effects import unit_of_work

    resources: Resources = app.state.resources
    owner = (await make_user(resources.sessions, "agent1")).id
    await make_user(resources.sessions, "boss", Role.ADMIN)
    agent_token = await login_at(server, "agent1")
    admin_token = await login_at(server, "boss")
    call = await uploaded_call(resources, owner, short_speech, enqueue=False)
    call_id = to_global_id("Call", call.id)
    agent_query = (
        "subscription($id: ID!) { callStatus(id: $id) "
        "{ progress call { id progress agent { username } } } }"
    )
    admin_query = (
        "subscription($id: ID!) { callStatus(id: $id) { stage call { filename progress } } }"
    )
    sockets = [
        *[await _open_subscription(server, agent_token, agent_query, call_id) for _ in range(12)],
        *[await _open_subscription(server, admin_token, admin_query, call_id) for _ in range(3)],
    ]
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        # What the worker does per step: the progress write, published after its commit.
        async with unit_of_work(resources.sessions, resources.effect_targets) as session:
            assert call.job_id is not None
            updated = await call_service.record_progress(
                session, call.id, call.job_id, PipelineStage.TRANSCRIBING, 0.5
            )
            assert updated is not None
        async with asyncio.timeout(30):
            replies = [json.loads(await ws.recv()) for ws in sockets]
    finally:
        event.remove(Engine, "before_cursor_execute", record)
        for ws in sockets:
            await ws.close()

    agent_events = [r["payload"]["data"]["callStatus"] for r in replies[:12]]
    admin_events = [r["payload"]["data"]["callStatus"] for r in replies[12:]]
    assert (
        agent_events
        == [
            {
                "progress": 0.5,
                "call": {"id": call_id, "progress": 0.5, "agent": {"username": "agent1"}},
            }
        ]
        * 12
    )
    assert (
        admin_events
        == [{"stage": "TRANSCRIBING", "call": {"filename": short_speech.name, "progress": 0.5}}] * 3
    )
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len([s for s in reads if "FROM calls" in s]) == 1, reads
    assert len([s for s in reads if "FROM users" in s]) == 1, reads
