"""`User.voiceprint`, `deleteVoiceprint` and the speakers' `roleSource` through the API."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.auth.policy import may_see_voiceprint
from app.core.enums import RoleSource
from app.core.ids import to_global_id
from app.db.engine import SessionFactory
from app.db.models import Role, User, Voiceprint, VoiceprintSample
from tests.api.helpers import GraphQLClient, success_call
from tests.factories import conversation_results, make_user

pytestmark = pytest.mark.usefixtures("clean_database")

USERS = "{ users { username voiceprint { enrolled calls updatedAt } } }"
ME = "{ me { username voiceprint { enrolled calls updatedAt } } }"
DELETE = "mutation($id: ID!) { deleteVoiceprint(userId: $id) { username voiceprint { calls } } }"


async def _store_voiceprint(sessions: SessionFactory, username: str) -> None:
    async with sessions() as session, session.begin():
        user = (await session.execute(select(User).where(User.username == username))).scalar_one()
        session.add(
            Voiceprint(
                user_id=user.id,
                model="resemblyzer-ge2e-256",
                embedding=[0.1] * 256,
                enrolled=True,
                calls=4,
                updated_at=datetime.now(UTC),
            )
        )


async def test_admins_and_the_user_see_the_voiceprint_never_the_embedding(
    gql: GraphQLClient, sessions: SessionFactory
) -> None:
    admin = await make_user(sessions, "admin", Role.ADMIN)
    agent = await make_user(sessions, "agent1")
    other = await make_user(sessions, "agent2")
    await _store_voiceprint(sessions, "agent1")
    admin_token = await gql.login("admin")
    agent_token = await gql.login("agent1")

    listing = await gql(USERS, token=admin_token)
    assert not listing.errors, listing.errors
    assert listing.data is not None
    by_name = {u["username"]: u["voiceprint"] for u in listing.data["users"]}
    assert by_name["agent2"] is None and by_name["admin"] is None
    assert by_name["agent1"]["enrolled"] is True and by_name["agent1"]["calls"] == 4
    assert by_name["agent1"]["updatedAt"]

    own = await gql(ME, token=agent_token)
    assert own.data is not None and own.data["me"]["voiceprint"]["calls"] == 4
    # The type has no field that could carry the embedding.
    leak = await gql("{ me { voiceprint { embedding } } }", token=agent_token)
    assert leak.errors

    # Everyone else sees null (agents reach no other user through the API at all).
    assert await may_see_voiceprint(sessions, admin, agent)
    assert await may_see_voiceprint(sessions, agent, agent)
    assert not await may_see_voiceprint(sessions, other, agent)


async def test_only_an_admin_deletes_a_voiceprint_and_learning_starts_again(
    gql: GraphQLClient, sessions: SessionFactory
) -> None:
    await make_user(sessions, "admin", Role.ADMIN)
    await make_user(sessions, "agent1")
    await _store_voiceprint(sessions, "agent1")
    admin_token = await gql.login("admin")
    agent_token = await gql.login("agent1")
    me = await gql("{ me { id } }", token=agent_token)
    assert me.data is not None
    agent_id = me.data["me"]["id"]

    refused = await gql(DELETE, {"id": agent_id}, token=agent_token)
    assert refused.codes == ["FORBIDDEN"]
    deleted = await gql(DELETE, {"id": agent_id}, token=admin_token)
    assert not deleted.errors, deleted.errors
    assert deleted.data == {"deleteVoiceprint": {"username": "agent1", "voiceprint": None}}
    async with sessions() as session:
        left = await session.scalar(select(func.count()).select_from(Voiceprint))
        samples = await session.scalar(select(func.count()).select_from(VoiceprintSample))
    assert (left, samples) == (0, 0)


async def test_speakers_say_what_decided_their_role(
    app: FastAPI,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    sessions: SessionFactory,
    audio_dir: Path,
) -> None:
    await make_user(sessions, "agent1")
    token = await gql.login("agent1")
    transcript, insight = conversation_results(4)
    speakers = [
        dataclasses.replace(s, role_source=RoleSource.VOICE, role_confidence=0.9)
        for s in insight.metrics.speakers
    ]
    insight = dataclasses.replace(
        insight, metrics=dataclasses.replace(insight.metrics, speakers=speakers)
    )
    call = await success_call(app, http, token, audio_dir, (transcript, insight))
    result = await gql(
        "query($id: ID!) { call(id: $id) { metrics { speakers { speaker role roleSource "
        "roleConfidence } } } }",
        {"id": call["id"]},
        token=token,
    )
    assert not result.errors, result.errors
    assert result.data is not None
    rows = result.data["call"]["metrics"]["speakers"]
    assert rows and {(r["roleSource"], r["roleConfidence"]) for r in rows} == {("VOICE", 0.9)}


async def test_the_agents_supervisors_see_the_voiceprint_other_supervisors_null(
    gql: GraphQLClient, sessions: SessionFactory
) -> None:
    await make_user(sessions, "admin", Role.ADMIN)
    agent = await make_user(sessions, "agent1")
    ours = await make_user(sessions, "sup_a", Role.SUPERVISOR)
    await make_user(sessions, "sup_b", Role.SUPERVISOR)
    await _store_voiceprint(sessions, "agent1")
    created = await gql(
        "mutation($i: TeamInput!) { createTeam(input: $i) { id } }",
        {
            "i": {
                "name": "Team A",
                "supervisorIds": [to_global_id("User", ours.id)],
                "agentIds": [to_global_id("User", agent.id)],
            }
        },
        token=await gql.login("admin"),
    )
    assert not created.errors
    query = "query($id: ID!) { node(id: $id) { ... on User { voiceprint { calls } } } }"
    variables = {"id": to_global_id("User", agent.id)}
    seen = await gql(query, variables, token=await gql.login("sup_a"))
    assert seen.data == {"node": {"voiceprint": {"calls": 4}}}
    other = await gql(query, variables, token=await gql.login("sup_b"))
    assert other.data in ({"node": None}, {"node": {"voiceprint": None}})
