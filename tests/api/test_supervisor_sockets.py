"""The callStatus subscription over a real uvicorn: a supervisor watches their team's calls
and no other; a team or role change closes the affected supervisors' sockets (4403) in every
API process, and the next subscription sees the new scope."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from app.core.ids import to_global_id
from app.db.engine import SessionFactory
from app.db.models import Role
from tests.api.helpers import GraphQLClient, upload_ok
from tests.api.test_supervisor_scope import CREATE_TEAM, UPDATE_TEAM, UPDATE_USER, ok
from tests.api.test_websockets import (
    PROTOCOL,
    SUBSCRIPTION,
    Server,
    _bearer,
    _closed_with,
    _init,
    serve,  # noqa: F401 (the fixture)
)
from tests.factories import login_at, make_user, tone_bytes


async def _subscribe(ws: ClientConnection, call_id: str) -> dict[str, Any]:
    """Starts callStatus on an open socket; its first message."""
    await ws.send(
        json.dumps(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": SUBSCRIPTION, "variables": {"id": call_id}},
            }
        )
    )
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return message


def _codes(message: dict[str, Any]) -> list[str]:
    errors = message["payload"] if message["type"] == "error" else message["payload"].get("errors")
    return [error["extensions"]["code"] for error in errors or []]


async def test_supervisors_watch_their_teams_calls_and_changes_close_their_sockets(
    sessions: SessionFactory,
    serve: Server,  # noqa: F811 (the imported fixture)
    audio_dir: Path,
) -> None:
    users = {
        name: await make_user(sessions, name, role)
        for name, role in (
            ("admin", Role.ADMIN),
            ("sup_a", Role.SUPERVISOR),
            ("sup_b", Role.SUPERVISOR),
            ("ann", Role.AGENT),
        )
    }
    ids = {name: to_global_id("User", user.id) for name, user in users.items()}
    async with serve() as watched, serve() as other:
        tokens = {name: await login_at(watched, name) for name in users}
        async with httpx.AsyncClient(base_url=f"http://{other}") as client:
            gql = GraphQLClient(client)
            team_a = ok(
                await gql(
                    CREATE_TEAM,
                    {
                        "input": {
                            "name": "A",
                            "supervisorIds": [ids["sup_a"]],
                            "agentIds": [ids["ann"]],
                        }
                    },
                    token=tokens["admin"],
                )
            )["createTeam"]["id"]
            ok(
                await gql(
                    CREATE_TEAM,
                    {"input": {"name": "B", "supervisorIds": [ids["sup_b"]]}},
                    token=tokens["admin"],
                )
            )
            call = await upload_ok(client, tone_bytes(audio_dir), token=tokens["ann"])

        url = f"ws://{watched}/graphql"
        async with (
            websockets.connect(url, subprotocols=PROTOCOL) as sup_a,
            websockets.connect(url, subprotocols=PROTOCOL) as sup_b,
            websockets.connect(url, subprotocols=PROTOCOL) as ann,
        ):
            for ws, name in ((sup_a, "sup_a"), (sup_b, "sup_b"), (ann, "ann")):
                assert await _init(ws, _bearer(tokens[name])) == {"type": "connection_ack"}
            first = await _subscribe(sup_a, call["id"])
            assert first["type"] == "next", first
            assert first["payload"]["data"]["callStatus"]["status"] == "RUNNING"
            # Another team's supervisor: NOT_FOUND, as for a missing call.
            assert _codes(await _subscribe(sup_b, call["id"])) == ["NOT_FOUND"]
            assert (await _subscribe(ann, call["id"]))["type"] == "next"

            # The team loses its agent, changed through the other API process: sup_a's
            # socket closes; nobody else's does.
            async with httpx.AsyncClient(base_url=f"http://{other}") as client:
                ok(
                    await GraphQLClient(client)(
                        UPDATE_TEAM,
                        {"id": team_a, "input": {"name": "A", "supervisorIds": [ids["sup_a"]]}},
                        token=tokens["admin"],
                    )
                )
            assert await _closed_with(sup_a) == 4403
            await ann.ping()
            await sup_b.ping()

        # The same token still works, and the new scope holds for the next subscription.
        async with websockets.connect(url, subprotocols=PROTOCOL) as again:
            assert await _init(again, _bearer(tokens["sup_a"])) == {"type": "connection_ack"}
            assert _codes(await _subscribe(again, call["id"])) == ["NOT_FOUND"]

        # A role change closes the user's own sockets.
        async with websockets.connect(url, subprotocols=PROTOCOL) as ann:
            assert await _init(ann, _bearer(tokens["ann"])) == {"type": "connection_ack"}
            assert (await _subscribe(ann, call["id"]))["type"] == "next"
            async with httpx.AsyncClient(base_url=f"http://{other}") as client:
                ok(
                    await GraphQLClient(client)(
                        UPDATE_USER,
                        {"id": ids["ann"], "input": {"role": "SUPERVISOR"}},
                        token=tokens["admin"],
                    )
                )
            assert await _closed_with(ann) == 4403
