"""The audit trail through the API: each audited action appears exactly once, with the right
actor, call, target user and client address; what is not an event (the list page, a
seek); auditEvents for admins only, newest first, paginated and filtered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from app.core.enums import SpeakerRole
from app.core.ids import parse_global_id, to_global_id
from app.db.models import AuditEvent, Role
from tests.api.helpers import GraphQLClient, resources_of, upload_ok
from tests.api.test_supervisor_scope import CREATE_TEAM, UPDATE_USER, ok
from tests.factories import LOGIN, PASSWORD, CallSpec, Turn, finished_call, make_user, tone_bytes

ADDRESS = "127.0.0.1"
"""The client address httpx's ASGI transport reports."""
EVENTS = (
    "query($first: Int, $after: String, $filter: AuditFilter) { "
    "auditEvents(first: $first, after: $after, filter: $filter) { totalCount "
    "pageInfo { hasNextPage hasPreviousPage endCursor } "
    "edges { cursor node { id at action actor { username } callId targetUserId detail "
    "address } } } }"
)


async def _events(app: FastAPI) -> list[AuditEvent]:
    async with resources_of(app).sessions() as session:
        return list((await session.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all())


async def _since(app: FastAPI, seq: int) -> list[tuple[str, uuid.UUID | None, uuid.UUID | None]]:
    return [(e.action, e.actor_id, e.call_id) for e in await _events(app) if e.seq > seq]


async def _last_seq(app: FastAPI) -> int:
    events = await _events(app)
    return events[-1].seq if events else 0


async def test_logins_user_and_team_changes_are_recorded_once_each(
    app: FastAPI, gql: GraphQLClient
) -> None:
    sessions = resources_of(app).sessions
    admin = await make_user(sessions, "admin", Role.ADMIN)
    agent = await make_user(sessions, "agent1")
    start = await _last_seq(app)

    admin_token = await gql.login("admin")
    wrong = await gql(LOGIN, {"u": "agent1", "p": "not-the-password"})
    unknown = await gql(LOGIN, {"u": "nobody", "p": PASSWORD})
    assert wrong.codes == unknown.codes == ["UNAUTHENTICATED"]
    created = ok(
        await gql(
            'mutation { createUser(input: {username: "sup1", password: "long-enough-pw", '
            "role: SUPERVISOR}) { id } }",
            token=admin_token,
        )
    )["createUser"]["id"]
    ok(
        await gql(
            UPDATE_USER,
            {"id": to_global_id("User", agent.id), "input": {"fullName": "Agent One"}},
            token=admin_token,
        )
    )
    ok(
        await gql(
            CREATE_TEAM,
            {
                "input": {
                    "name": "Day",
                    "supervisorIds": [created],
                    "agentIds": [to_global_id("User", agent.id)],
                }
            },
            token=admin_token,
        )
    )
    events = [e for e in await _events(app) if e.seq > start]
    assert [(e.action, e.actor_id, e.target_user_id, e.address) for e in events] == [
        ("user.login", admin.id, admin.id, ADDRESS),
        ("user.login_failed", agent.id, agent.id, ADDRESS),
        ("user.login_failed", None, None, ADDRESS),
        ("user.changed", admin.id, events[3].target_user_id, ADDRESS),
        ("user.changed", admin.id, agent.id, ADDRESS),
        ("team.changed", admin.id, None, ADDRESS),
    ]
    assert events[2].detail == "username 'nobody'"
    assert events[3].detail == "created 'sup1' as SUPERVISOR"
    assert events[4].detail == "full name"
    assert events[5].detail is not None and events[5].detail.startswith("created 'Day'")
    # Password reset by an admin, and changed by the user: one event each.
    before = await _last_seq(app)
    ok(
        await gql(
            'mutation($id: ID!) { resetPassword(id: $id, newPassword: "reset-password-1") { id } }',
            {"id": to_global_id("User", agent.id)},
            token=admin_token,
        )
    )
    agent_token = await gql.login("agent1", "reset-password-1")
    ok(
        await gql(
            'mutation { changePassword(currentPassword: "reset-password-1", '
            'newPassword: "changed-password-2") { accessToken } }',
            token=agent_token,
        )
    )
    changed = [e for e in await _events(app) if e.seq > before]
    assert [(e.action, e.actor_id, e.target_user_id, e.detail) for e in changed] == [
        ("user.changed", admin.id, agent.id, "password reset"),
        ("user.login", agent.id, agent.id, None),
        ("user.changed", agent.id, agent.id, "password changed"),
    ]
    # A change that changes nothing is not an event.
    before = await _last_seq(app)
    ok(
        await gql(
            UPDATE_USER,
            {"id": to_global_id("User", agent.id), "input": {"fullName": "Agent One"}},
            token=admin_token,
        )
    )
    assert await _since(app, before) == []


async def test_call_reads_and_changes_are_recorded_once_each(
    app: FastAPI, http: httpx.AsyncClient, gql: GraphQLClient, audio_dir: Path, tmp_path: Path
) -> None:
    resources = resources_of(app)
    admin = await make_user(resources.sessions, "admin", Role.ADMIN)
    agent = await make_user(resources.sessions, "agent1")
    admin_token, agent_token = await gql.login("admin"), await gql.login("agent1")
    recording = tmp_path / "call.wav"
    recording.write_bytes(tone_bytes(audio_dir, seconds=0.5))
    finished = await finished_call(
        resources.sessions,
        resources.effect_targets,
        agent.id,
        CallSpec([Turn(SpeakerRole.AGENT, 0, 5, "salom")]),
        storage=resources.storage,
        audio=recording,
    )
    call_id = to_global_id("Call", finished.id)
    start = await _last_seq(app)

    # The list page, even with many fields, is not a read of a call's detail.
    ok(await gql("{ calls { edges { node { id status agent { id } } } } }", token=agent_token))
    assert await _since(app, start) == []

    # call(id) with its transcript, analysis and audio: one view and one audio link,
    # however many fields ask.
    detail = ok(
        await gql(
            "query($id: ID!) { call(id: $id) { id segments { text } analysis { summary } "
            "again: segments { speaker } audioUrl audioUrlExpiresAt } }",
            {"id": call_id},
            token=admin_token,
        )
    )["call"]
    assert await _since(app, start) == [
        ("call.viewed", admin.id, finished.id),
        ("call.audio_opened", admin.id, finished.id),
    ]

    # The recording streamed from its start: one event naming the user the link was
    # issued to; a seek further in is not another.
    seq = await _last_seq(app)
    path = detail["audioUrl"].removeprefix("http://testserver")
    assert (await http.get(path)).status_code == 200
    assert (await http.get(path, headers={"Range": "bytes=100-"})).status_code == 206
    assert (await http.head(path)).status_code == 200
    streamed = [e for e in await _events(app) if e.seq > seq]
    assert [(e.action, e.actor_id, e.call_id, e.address, e.detail) for e in streamed] == [
        ("call.audio_opened", admin.id, finished.id, ADDRESS, "streamed")
    ]
    # The link's user is signed: changing it breaks the link.
    forged = path.replace(f"by={admin.id}", f"by={agent.id}")
    assert (await http.get(forged)).status_code == 403

    # node(id) is a detail read too; the list page selecting transcripts is one view per call.
    seq = await _last_seq(app)
    ok(await gql("query($id: ID!) { node(id: $id) { id } }", {"id": call_id}, token=agent_token))
    ok(await gql("{ calls { edges { node { segments { text } } } } }", token=agent_token))
    assert await _since(app, seq) == [
        ("call.viewed", agent.id, finished.id),
        ("call.viewed", agent.id, finished.id),
    ]
    # A refused read is not an event.
    seq = await _last_seq(app)
    await make_user(resources.sessions, "agent2")
    other_token = await gql.login("agent2")
    hidden = await gql(
        "query($id: ID!) { call(id: $id) { id } }", {"id": call_id}, token=other_token
    )
    assert hidden.codes == ["NOT_FOUND"]
    assert [a for a, _, _ in await _since(app, seq)] == ["user.changed", "user.login"]

    # Upload, reprocess, delete: each once, in the transaction of the change.
    seq = await _last_seq(app)
    uploaded = await upload_ok(http, tone_bytes(audio_dir), token=agent_token)
    _, uploaded_id = parse_global_id(uploaded["id"])
    ok(
        await gql(
            "mutation($id: ID!) { reprocessCall(id: $id) { id } }",
            {"id": call_id},
            token=agent_token,
        )
    )
    ok(await gql("mutation($id: ID!) { deleteCall(id: $id) }", {"id": call_id}, token=admin_token))
    changes = [e for e in await _events(app) if e.seq > seq]
    assert [(e.action, e.actor_id, e.call_id, e.target_user_id, e.address) for e in changes] == [
        ("call.uploaded", agent.id, uploaded_id, agent.id, ADDRESS),
        ("call.reprocessed", agent.id, finished.id, agent.id, ADDRESS),
        ("call.deleted", admin.id, finished.id, agent.id, ADDRESS),
    ]
    # A refused change is not an event (the call is gone now).
    seq = await _last_seq(app)
    gone = await gql(
        "mutation($id: ID!) { deleteCall(id: $id) }", {"id": call_id}, token=admin_token
    )
    assert gone.codes == ["NOT_FOUND"]
    assert await _since(app, seq) == []


async def test_audit_events_for_admins_newest_first_paginated_and_filtered(
    app: FastAPI, gql: GraphQLClient
) -> None:
    sessions = resources_of(app).sessions
    await make_user(sessions, "admin", Role.ADMIN)
    await make_user(sessions, "sup1", Role.SUPERVISOR)
    agent = await make_user(sessions, "agent1")
    admin_token = await gql.login("admin")
    for _ in range(3):
        await gql.login("agent1")
    assert (await gql(LOGIN, {"u": "agent1", "p": "wrong-password"})).codes == ["UNAUTHENTICATED"]

    for username in ("agent1", "sup1"):
        token = await gql.login(username)
        assert (await gql(EVENTS, token=token)).codes == ["FORBIDDEN"]
    assert (await gql(EVENTS)).codes == ["UNAUTHENTICATED"]

    everything = ok(await gql(EVENTS, token=admin_token))["auditEvents"]
    actions = [edge["node"]["action"] for edge in everything["edges"]]
    # Newest first: the supervisor's and the agent's logins, the failure, the agent's three
    # logins, the admin's login, and the three accounts created by the factories.
    assert actions == [
        "user.login",
        "user.login",
        "user.login_failed",
        "user.login",
        "user.login",
        "user.login",
        "user.login",
        "user.changed",
        "user.changed",
        "user.changed",
    ]
    assert everything["totalCount"] == 10
    newest = everything["edges"][0]["node"]
    assert newest["actor"] == {"username": "sup1"}
    assert newest["address"] == ADDRESS
    assert newest["targetUserId"] is not None and newest["callId"] is None

    # Pages of 4 walk the same list, with no gaps or repeats.
    seen: list[str] = []
    after = None
    while True:
        page = ok(await gql(EVENTS, {"first": 4, "after": after}, token=admin_token))["auditEvents"]
        seen.extend(edge["node"]["id"] for edge in page["edges"])
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [edge["node"]["id"] for edge in everything["edges"]]

    def count(filter: dict[str, Any]) -> Any:
        return gql(EVENTS, {"filter": filter}, token=admin_token)

    agent_id = to_global_id("User", agent.id)
    by_agent = ok(await count({"actorId": agent_id, "action": "user.login"}))["auditEvents"]
    assert by_agent["totalCount"] == 4
    failed = ok(await count({"action": "user.login_failed"}))["auditEvents"]
    assert [e["node"]["actor"] for e in failed["edges"]] == [{"username": "agent1"}]
    assert (
        ok(await count({"callId": to_global_id("Call", uuid.uuid4())}))["auditEvents"]["totalCount"]
        == 0
    )
    now = datetime.now(UTC)
    assert (
        ok(await count({"after": (now - timedelta(minutes=5)).isoformat()}))["auditEvents"][
            "totalCount"
        ]
        == 10
    )
    assert (
        ok(await count({"before": (now - timedelta(minutes=5)).isoformat()}))["auditEvents"][
            "totalCount"
        ]
        == 0
    )
    assert (
        ok(await count({"after": (now + timedelta(minutes=5)).isoformat()}))["auditEvents"][
            "totalCount"
        ]
        == 0
    )

    bad_action = await count({"action": "call.listened"})
    assert bad_action.codes == ["BAD_USER_INPUT"]
    assert bad_action.errors[0]["extensions"]["field"] == "filter.action"
    bad_cursor = await gql(EVENTS, {"after": "bm9wZQ"}, token=admin_token)
    assert bad_cursor.codes == ["BAD_USER_INPUT"]
    too_many = await gql(EVENTS, {"first": 10_000}, token=admin_token)
    assert too_many.codes == ["BAD_USER_INPUT"]

    # node(id) reads an event for an admin only.
    event_id = newest["id"]
    node = "query($id: ID!) { node(id: $id) { ... on AuditEvent { action } } }"
    assert ok(await gql(node, {"id": event_id}, token=admin_token))["node"] == {
        "action": "user.login"
    }
    agent_token = await gql.login("agent1")
    assert ok(await gql(node, {"id": event_id}, token=agent_token))["node"] is None
    # Reading the trail is not itself an event: the count is what it was, plus that login.
    again = ok(await gql(EVENTS, {"first": 1}, token=admin_token))["auditEvents"]
    assert again["totalCount"] == 11
    assert again["edges"][0]["node"]["actor"] == {"username": "agent1"}
