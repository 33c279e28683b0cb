"""callStatus fan-out: subscribers of one status event with the same selection,
variables and viewer are sent the `next` payload the first one's Strawberry pipeline made
(app/schema/fan_out.py). Two real uvicorn servers on the same PostgreSQL and Redis, one
relaying (the default) and one with `WS_RELAY_SHARED_PAYLOADS=false`, serve the same
subscribers the same events; every frame each subscriber receives is compared byte for byte."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Hashable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets
from fastapi import FastAPI
from sqlalchemy import update
from websockets.asyncio.client import ClientConnection

from app.api.main import create_app
from app.api.resources import Resources
from app.core.config import Settings
from app.core.ids import to_global_id
from app.db.models import Call as CallModel
from app.db.models import PipelineStage, Role
from app.schema.errors import ErrorCodes
from app.schema.fan_out import SubscriptionLane
from app.services import calls as call_service
from app.services.effects import unit_of_work
from tests.conftest import clear_login_throttle
from tests.factories import login_at, make_call, make_user, serving, write_tone

PROTOCOL = [websockets.Subprotocol("graphql-transport-ws")]
WITH_CALL = (
    "subscription($id: ID!) { callStatus(id: $id) { callId status stage progress error at "
    "live call { id status stage progress agent { username } } } }"
)
PROGRESS_ONLY = "subscription Progress($id: ID!) { callStatus(id: $id) { progress stage } }"


@dataclass
class Servers:
    relay: str
    stock: str
    resources: Resources
    """The relaying server's: publishing through it reaches both (one Redis)."""


@dataclass
class Watcher:
    """One subscriber on one server; `frames` are the raw texts after the first event."""

    ws: ClientConnection
    operation_id: str
    frames: list[str] = field(default_factory=list)


@pytest.fixture
def pipeline_runs(monkeypatch: pytest.MonkeyPatch) -> Counter[bool]:
    """Results run through Strawberry's per-result pipeline, by whether the server relays:
    the error-code extension's stream hook runs once per such result (and still does, here)."""
    runs: Counter[bool] = Counter()
    stream_hook = ErrorCodes.on_stream_result

    def counted(self: ErrorCodes, result: Any) -> Iterator[None]:
        runs[self.execution_context.context.settings.ws_relay_shared_payloads] += 1
        yield from stream_hook(self, result)

    monkeypatch.setattr(ErrorCodes, "on_stream_result", counted)
    return runs


@pytest.fixture
async def servers(
    settings: Settings, clean_database: None, redis_url: str
) -> AsyncIterator[Servers]:
    await clear_login_throttle(redis_url)
    async with AsyncExitStack() as stack:
        addresses = []
        apps: list[FastAPI] = []
        for relay in (True, False):
            app = create_app(settings.model_copy(update={"ws_relay_shared_payloads": relay}))
            addresses.append(await stack.enter_async_context(serving(app)))
            apps.append(app)
        yield Servers(addresses[0], addresses[1], apps[0].state.resources)


async def _watch(address: str, token: str, query: str, call_id: str, operation_id: str) -> Watcher:
    ws = await websockets.connect(f"ws://{address}/graphql", subprotocols=PROTOCOL)
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    assert json.loads(await ws.recv()) == {"type": "connection_ack"}
    await ws.send(
        json.dumps(
            {
                "id": operation_id,
                "type": "subscribe",
                "payload": {"query": query, "variables": {"id": call_id}},
            }
        )
    )
    first = json.loads(await ws.recv())
    assert first["type"] == "next" and first["id"] == operation_id, first
    return Watcher(ws, operation_id)


async def _receive_one_each(watchers: list[Watcher]) -> None:
    async with asyncio.timeout(30):
        for watcher in watchers:
            frame = await watcher.ws.recv()
            assert isinstance(frame, str)  # text frames, as graphql-transport-ws requires
            watcher.frames.append(frame)


async def _record_progress(resources: Resources, call: CallModel, progress: float) -> None:
    """What the worker does per step: the write, and after its commit the status event."""
    assert call.job_id is not None
    async with unit_of_work(resources.sessions, resources.effect_targets) as session:
        updated = await call_service.record_progress(
            session, call.id, call.job_id, PipelineStage.TRANSCRIBING, progress
        )
        assert updated is not None


async def _running_call(resources: Resources, owner: uuid.UUID, tmp_path: Path) -> CallModel:
    audio = write_tone(
        tmp_path / "tone.wav", container="wav", codec="pcm_s16le", sample_rate=8000, channels=1
    )
    return await make_call(resources.sessions, resources.storage, owner, audio)


def _messages(watcher: Watcher) -> list[dict[str, Any]]:
    return [json.loads(frame) for frame in watcher.frames]


async def test_relayed_frames_are_the_stock_frames_byte_for_byte(
    servers: Servers, pipeline_runs: Counter[bool], tmp_path: Path
) -> None:
    """8 subscribers per server in 3 sharing keys (two selections of one agent, the first
    selection for an admin), operation ids of different shapes; 3 progress events, then the
    call fails: every frame, `complete` included, is the same on both servers, and the
    relaying server ran Strawberry's pipeline once per key and event, not per subscriber."""
    resources = servers.resources
    owner = await make_user(resources.sessions, "agent1")
    await make_user(resources.sessions, "boss", Role.ADMIN)
    call = await _running_call(resources, owner.id, tmp_path)
    call_id = to_global_id("Call", call.id)
    specs = [
        *[("agent1", WITH_CALL, f"call-{n}") for n in range(4)],
        *[("agent1", PROGRESS_ONLY, str(n)) for n in range(2)],
        *[("boss", WITH_CALL, "1") for _ in range(2)],
    ]
    watchers: dict[str, list[Watcher]] = {}
    for name, address in (("relay", servers.relay), ("stock", servers.stock)):
        tokens = {user: await login_at(address, user) for user in ("agent1", "boss")}
        watchers[name] = [
            await _watch(address, tokens[user], query, call_id, operation_id)
            for user, query, operation_id in specs
        ]
    everyone = watchers["relay"] + watchers["stock"]
    pipeline_runs.clear()
    try:
        for progress in (0.25, 0.5, 0.75):
            await _record_progress(resources, call, progress)
            await _receive_one_each(everyone)
        assert call.job_id is not None
        async with unit_of_work(resources.sessions, resources.effect_targets) as session:
            assert await call_service.fail(session, call.id, call.job_id, "decoder gave up")
        await _receive_one_each(everyone)  # the final event
        await _receive_one_each(everyone)  # complete
    finally:
        for watcher in everyone:
            await watcher.ws.close()

    for relayed, stock in zip(watchers["relay"], watchers["stock"], strict=True):
        assert relayed.frames == stock.frames
    for watcher in watchers["relay"]:
        messages = _messages(watcher)
        assert [m["type"] for m in messages] == ["next"] * 4 + ["complete"]
        assert all(m["id"] == watcher.operation_id for m in messages)
        assert messages[-1] == {"id": watcher.operation_id, "type": "complete"}
        assert all(list(m) == ["id", "type", "payload"] for m in messages[:-1])
        assert all("errors" not in m["payload"] for m in messages[:-1])
    agent_events = [
        m["payload"]["data"]["callStatus"] for m in _messages(watchers["relay"][0])[:-1]
    ]
    assert [e["progress"] for e in agent_events] == [0.25, 0.5, 0.75, 0.75]
    assert [e["status"] for e in agent_events] == ["RUNNING"] * 3 + ["FAIL"]
    assert agent_events[-1]["error"] == "decoder gave up"
    assert agent_events[-1]["call"] == {
        "id": call_id,
        "status": "FAIL",
        "stage": "TRANSCRIBING",
        "progress": 0.75,
        "agent": {"username": "agent1"},
    }
    assert _messages(watchers["relay"][4])[0]["payload"] == {
        "data": {"callStatus": {"progress": 0.25, "stage": "TRANSCRIBING"}}
    }
    events, keys = 4, 3
    assert pipeline_runs[False] == len(specs) * events
    assert pipeline_runs[True] == keys * events


async def test_each_viewer_gets_only_what_it_may_see_and_errors_end_as_before(
    servers: Servers, pipeline_runs: Counter[bool], tmp_path: Path
) -> None:
    """The call moves from agent1 to agent2 while both watch it (3 sockets each per server):
    on the relaying server too, agent1's subscribers get NOT_FOUND for `call` and none of it,
    agent2's get the call; then the call is deleted and every subscriber gets a `next` with
    NOT_FOUND and `complete`, frame for frame as without relaying."""
    resources = servers.resources
    first_owner = await make_user(resources.sessions, "agent1")
    second_owner = await make_user(resources.sessions, "agent2")
    call = await _running_call(resources, first_owner.id, tmp_path)
    call_id = to_global_id("Call", call.id)
    watchers: dict[str, dict[str, list[Watcher]]] = {}
    for name, address in (("relay", servers.relay), ("stock", servers.stock)):
        token = await login_at(address, "agent1")
        watchers[name] = {
            "agent1": [await _watch(address, token, WITH_CALL, call_id, "1") for _ in range(3)]
        }
    async with resources.sessions() as session, session.begin():
        await session.execute(
            update(CallModel).where(CallModel.id == call.id).values(owner_id=second_owner.id)
        )
    for name, address in (("relay", servers.relay), ("stock", servers.stock)):
        token = await login_at(address, "agent2")
        watchers[name]["agent2"] = [
            await _watch(address, token, WITH_CALL, call_id, "1") for _ in range(3)
        ]
    everyone = [w for by_user in watchers.values() for ws in by_user.values() for w in ws]
    pipeline_runs.clear()
    try:
        await _record_progress(resources, call, 0.5)
        await _receive_one_each(everyone)
        admin = await make_user(resources.sessions, "boss", Role.ADMIN)
        async with unit_of_work(resources.sessions, resources.effect_targets) as session:
            await call_service.delete_call(session, admin, call.id)
        await _receive_one_each(everyone)  # a next with the error
        await _receive_one_each(everyone)  # complete
    finally:
        for watcher in everyone:
            await watcher.ws.close()

    for user in ("agent1", "agent2"):
        for relayed, stock in zip(watchers["relay"][user], watchers["stock"][user], strict=True):
            assert relayed.frames == stock.frames
    for watcher in watchers["relay"]["agent1"]:
        moved, deleted, complete = _messages(watcher)
        assert moved["type"] == "next"
        assert moved["payload"]["data"] is None
        assert [(e["path"], e["extensions"]["code"]) for e in moved["payload"]["errors"]] == [
            (["callStatus", "call"], "NOT_FOUND")
        ]
        assert "agent2" not in watcher.frames[0]
        assert deleted["type"] == "next" and deleted["payload"]["data"] is None
        assert [e["extensions"]["code"] for e in deleted["payload"]["errors"]] == ["NOT_FOUND"]
        assert complete == {"id": "1", "type": "complete"}
    for watcher in watchers["relay"]["agent2"]:
        moved, deleted, complete = _messages(watcher)
        assert "errors" not in moved["payload"]
        event = moved["payload"]["data"]["callStatus"]
        assert event["progress"] == 0.5
        assert event["call"]["agent"] == {"username": "agent2"}
        assert [e["extensions"]["code"] for e in deleted["payload"]["errors"]] == ["NOT_FOUND"]
        assert complete == {"id": "1", "type": "complete"}
    # The move: one payload per viewer. The deletion is an error the resolver raises, which
    # every subscriber hands to the stock pipeline, as before.
    assert pipeline_runs[True] == 2 + 6
    assert pipeline_runs[False] == 6 + 6


# --- the lane's hand-over rules, on one shared event ----------------------------------------


@dataclass
class _SharedEvent:
    shared_results: dict[Hashable, Any] = field(default_factory=dict)


@dataclass
class _Viewer:
    """SharingKeyed for one viewer whose execution results (keyed `key`) settled."""

    key: Hashable = "viewer-1"

    def sharing_key(self) -> Hashable | None:
        return self.key

    def shared_result_settled(self, results: dict[Hashable, Any], key: Hashable) -> bool:
        return True


async def _events(*items: Any) -> AsyncIterator[Any]:
    for item in items:
        if isinstance(item, Exception):
            raise item
        yield item


async def test_a_payload_whose_maker_leaves_is_made_by_the_next_subscriber() -> None:
    event = _SharedEvent()
    lanes = [SubscriptionLane() for _ in range(3)]
    stock = [lane.attach(_events(event), _Viewer()) for lane in lanes]
    assert await lanes[0].next_payload() is None  # lanes[0] makes it: handed over
    assert await anext(aiter(stock[0])) is event
    waiting = [asyncio.create_task(lane.next_payload()) for lane in lanes[1:]]
    await asyncio.sleep(0)  # one turn of the loop: the new tasks run on to their wait
    assert not any(task.done() for task in waiting)
    lanes[0].close()  # its subscriber left before its pipeline sent the payload
    await asyncio.sleep(0)  # one turn: the woken waiters run
    # The first waiter back makes it; the other waits again, and gets what it made.
    assert waiting[0].done() and waiting[0].result() is None
    assert await anext(aiter(stock[1])) is event
    assert not waiting[1].done()
    lanes[1].record('{"data":{}}', has_extensions=False)
    assert await waiting[1] == '{"data":{}}'
    assert event.shared_results[("next-payload", "viewer-1")] == '{"data":{}}'


async def test_a_payload_with_extensions_is_not_shared_and_each_runs_the_pipeline() -> None:
    event = _SharedEvent()
    lanes = [SubscriptionLane() for _ in range(3)]
    stock = [lane.attach(_events(event), _Viewer()) for lane in lanes]
    assert await lanes[0].next_payload() is None
    waiter = asyncio.create_task(lanes[1].next_payload())
    await asyncio.sleep(0)  # one turn of the loop: the waiter runs on to its wait
    lanes[0].record('{"data":{},"extensions":{"cost":1}}', has_extensions=True)
    assert await waiter is None
    assert await anext(aiter(stock[1])) is event
    assert await lanes[2].next_payload() is None
    assert await anext(aiter(stock[2])) is event


async def test_viewers_with_different_keys_never_share_a_payload() -> None:
    event = _SharedEvent()
    agent, admin = SubscriptionLane(), SubscriptionLane()
    agent.attach(_events(event), _Viewer(("user-1", "AGENT")))
    admin_stock = admin.attach(_events(event), _Viewer(("user-2", "ADMIN")))
    assert await agent.next_payload() is None
    agent.record('{"data":{"mine":1}}', has_extensions=False)
    assert await admin.next_payload() is None  # its own pipeline, not the agent's payload
    assert await anext(aiter(admin_stock)) is event


async def test_the_sources_errors_and_end_go_to_the_stock_pipeline() -> None:
    lane = SubscriptionLane()
    stock = aiter(lane.attach(_events(_SharedEvent(), LookupError("gone")), _Viewer()))
    assert await lane.next_payload() is None
    await anext(stock)
    assert await lane.next_payload() is None
    with pytest.raises(LookupError, match="gone"):
        await anext(stock)
    ended = SubscriptionLane()
    ended_stock = aiter(ended.attach(_events(), _Viewer()))
    assert await ended.next_payload() is None
    with pytest.raises(StopAsyncIteration):
        await anext(ended_stock)
