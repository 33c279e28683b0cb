"""Role isolation at every call entry point: an agent's call is invisible to other agents,
exactly like a missing one; an ADMIN sees and acts on all of them."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from app.core.config import Settings
from app.core.ids import to_global_id
from app.core.queue import QUEUE_NAME
from app.db.engine import SessionFactory
from tests.api.helpers import (
    CALL,
    CALLS,
    GraphQLClient,
    GraphQLResponse,
    call_row,
    resources_of,
    success_call,
    upload,
    upload_ok,
    user_id,
)
from tests.factories import make_user, rich_results, simple_results, tone_bytes

NODE = "query($id: ID!) { node(id: $id) { id ... on Call { status agent { id } } } }"
REPROCESS = "mutation($id: ID!) { reprocessCall(id: $id) { id status stage } }"
DELETE = "mutation($id: ID!) { deleteCall(id: $id) }"


def _message(result: GraphQLResponse) -> str:
    assert len(result.errors) == 1, result.errors
    message: str = result.errors[0]["message"]
    return message


async def _snapshot(app: FastAPI, gql: GraphQLClient, call_id: str, token: str) -> Any:
    row = await call_row(app, call_id)
    assert row is not None
    view = await gql(CALL, {"id": call_id}, token=token)
    assert view.data is not None, view.errors
    return (row.status, row.stage, row.job_id, row.progress, row.storage_key, view.data)


async def test_another_agents_call_is_invisible_at_every_entry_point(
    sessions: SessionFactory,
    app: FastAPI,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    admin_token: str,
    agent_token: str,
    settings: Settings,
    audio_dir: Path,
) -> None:
    await make_user(sessions, "agent2")
    b_token = await gql.login("agent2")
    agent_a = await user_id(gql, agent_token)
    agent_b = await user_id(gql, b_token)
    call_a = await success_call(app, http, agent_token, audio_dir, rich_results())
    call_b = await success_call(
        app, http, b_token, audio_dir, simple_results("kredit haqida savol", "uz")
    )
    missing = to_global_id("Call", uuid.uuid4())
    redis = resources_of(app).redis
    queued_before = await redis.zcard(QUEUE_NAME)
    before = await _snapshot(app, gql, call_a["id"], agent_token)

    # call(id): NOT_FOUND, word for word what a missing ID gets.
    hidden = await gql(CALL, {"id": call_a["id"]}, token=b_token)
    absent = await gql(CALL, {"id": missing}, token=b_token)
    assert hidden.codes == absent.codes == ["NOT_FOUND"]
    assert _message(hidden) == _message(absent)
    assert hidden.data is None and absent.data is None

    # calls: not listed, not counted, and filtering by A's agent finds nothing.
    listed = await gql(CALLS, {}, token=b_token)
    assert listed.data is not None, listed.errors
    assert [e["node"]["id"] for e in listed.data["calls"]["edges"]] == [call_b["id"]]
    assert listed.data["calls"]["totalCount"] == 1
    for filter_ in (
        {"agentId": agent_a},
        {"agentId": agent_a, "status": "SUCCESS"},
        {"search": "kredit"},  # both transcripts contain it
        {"language": "uz"},
    ):
        page = await gql(CALLS, {"filter": filter_}, token=b_token)
        assert page.data is not None, page.errors
        ids = [e["node"]["id"] for e in page.data["calls"]["edges"]]
        assert call_a["id"] not in ids, filter_
        assert page.data["calls"]["totalCount"] == len(ids), filter_
    # A's page cursor does not open A's calls to B either.
    a_page = await gql(CALLS, {"first": 1}, token=agent_token)
    assert a_page.data is not None
    cursor = a_page.data["calls"]["pageInfo"]["endCursor"]
    for variables in ({"after": cursor}, {"last": 5, "before": cursor}):
        page = await gql(CALLS, variables, token=b_token)
        assert page.data is not None, page.errors
        assert call_a["id"] not in [e["node"]["id"] for e in page.data["calls"]["edges"]]

    # node(id): null, like a missing one; A's user node too.
    for global_id in (call_a["id"], missing, agent_a):
        node = await gql(NODE, {"id": global_id}, token=b_token)
        assert node.errors == [] and node.data == {"node": None}, global_id

    # reprocessCall / deleteCall: NOT_FOUND with the missing-ID message, nothing changes.
    for mutation in (REPROCESS, DELETE):
        hidden = await gql(mutation, {"id": call_a["id"]}, token=b_token)
        absent = await gql(mutation, {"id": missing}, token=b_token)
        assert hidden.codes == absent.codes == ["NOT_FOUND"], hidden.errors
        assert _message(hidden) == _message(absent)
    assert await _snapshot(app, gql, call_a["id"], agent_token) == before
    assert await resources_of(app).storage.exists(before[4])
    assert await redis.zcard(QUEUE_NAME) == queued_before

    # uploadCall for A: FORBIDDEN, and no call is created for anyone.
    _, result = await upload(http, tone_bytes(audio_dir), token=b_token, agentId=agent_a)
    assert result.codes == ["FORBIDDEN"]
    listed_by_a = await gql(CALLS, {}, token=agent_token)
    assert listed_by_a.data is not None
    assert [e["node"]["id"] for e in listed_by_a.data["calls"]["edges"]] == [call_a["id"]]

    # The ADMIN sees and acts on everything.
    everything = await gql(CALLS, {}, token=admin_token)
    assert everything.data is not None
    assert everything.data["calls"]["totalCount"] == 2
    assert {e["node"]["id"] for e in everything.data["calls"]["edges"]} == {
        call_a["id"],
        call_b["id"],
    }
    by_agent = await gql(CALLS, {"filter": {"agentId": agent_a}}, token=admin_token)
    assert by_agent.data is not None
    assert [e["node"]["id"] for e in by_agent.data["calls"]["edges"]] == [call_a["id"]]
    seen = await gql(CALL, {"id": call_a["id"]}, token=admin_token)
    assert seen.data is not None and seen.data["call"] == before[5]["call"]
    node = await gql(NODE, {"id": call_b["id"]}, token=admin_token)
    assert node.data == {
        "node": {"id": call_b["id"], "status": "SUCCESS", "agent": {"id": agent_b}}
    }
    node = await gql(NODE, {"id": agent_a}, token=admin_token)
    assert node.data == {"node": {"id": agent_a}}
    reprocessed = await gql(REPROCESS, {"id": call_a["id"]}, token=admin_token)
    assert reprocessed.data == {
        "reprocessCall": {"id": call_a["id"], "status": "RUNNING", "stage": "QUEUED"}
    }
    deleted = await gql(DELETE, {"id": call_b["id"]}, token=admin_token)
    assert deleted.data == {"deleteCall": call_b["id"]}
    assert await call_row(app, call_b["id"]) is None
    # ... and the owner still acts on their own call.
    own = await gql(DELETE, {"id": call_a["id"]}, token=agent_token)
    assert own.data == {"deleteCall": call_a["id"]}, own.errors


async def test_foreign_and_malformed_ids(
    app: FastAPI,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    agent_token: str,
    audio_dir: Path,
) -> None:
    call = await upload_ok(http, tone_bytes(audio_dir), token=agent_token)
    me = await user_id(gql, agent_token)
    entry_points = (CALL, REPROCESS, DELETE)

    # An ID of another type is NOT_FOUND, like a missing call.
    foreign = (me, to_global_id("User", uuid.uuid4()), to_global_id("Segment", uuid.uuid4()))
    for query in entry_points:
        for global_id in foreign:
            result = await gql(query, {"id": global_id}, token=agent_token)
            assert result.codes == ["NOT_FOUND"], (query, global_id, result.errors)
            assert _message(result) == "Call not found"
    unknown_type = await gql(NODE, {"id": to_global_id("Segment", uuid.uuid4())}, token=agent_token)
    assert unknown_type.data == {"node": None} and unknown_type.errors == []

    # Malformed IDs are BAD_USER_INPUT everywhere, node included.
    malformed = (
        "",
        "!!!",
        "not base64 at all",
        base64.urlsafe_b64encode(b"Call:not-a-uuid").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
        "Q2FsbA",  # "Call" with no separator or UUID
        "x" * 5000,
    )
    for query in (*entry_points, NODE):
        for global_id in malformed:
            result = await gql(query, {"id": global_id}, token=agent_token)
            assert result.codes == ["BAD_USER_INPUT"], (query, global_id, result.errors)
            assert len(_message(result)) < 200
    assert (await call_row(app, call["id"])) is not None


async def test_every_entry_point_needs_a_valid_token(
    app: FastAPI,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    agent_token: str,
    audio_dir: Path,
) -> None:
    call = await upload_ok(http, tone_bytes(audio_dir), token=agent_token)
    for token in (None, "garbage", agent_token[:-4] + "AAAA"):
        for query in (CALL, NODE, REPROCESS, DELETE):
            result = await gql(query, {"id": call["id"]}, token=token)
            assert result.codes == ["UNAUTHENTICATED"], (query, token, result.errors)
        result = await gql(CALLS, {}, token=token)
        assert result.codes == ["UNAUTHENTICATED"]
    row = await call_row(app, call["id"])
    assert row is not None and row.status.value == "RUNNING"
