"""Teams and the SUPERVISOR role through the API: each scope (admin, supervisor of the team,
supervisor of another team, agent, two teams sharing an agent) over calls, call, node,
callStats, search and audioUrl; what a supervisor may not do; team and role changes taking
effect on the next request; the bad-input rules of teams."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.api.resources import Resources
from app.core.enums import SpeakerRole
from app.core.ids import to_global_id
from app.db.models import Role
from tests.api.helpers import GraphQLClient, GraphQLResponse, resources_of, upload
from tests.factories import CallSpec, Turn, finished_call, make_user, tone_bytes

CALLS = (
    "query($f: CallFilter) { calls(filter: $f) { totalCount "
    "edges { node { id agent { username } } } } }"
)
CALL = "query($id: ID!) { call(id: $id) { id agent { username } audioUrl } }"
NODE = "query($id: ID!) { node(id: $id) { id ... on Call { agent { username } } } }"
STATS = "{ callStats { calls } }"
TEAMS = "{ teams { name supervisors { username } agents { username } } }"
CREATE_TEAM = (
    "mutation($input: TeamInput!) { createTeam(input: $input) "
    "{ id name supervisors { username } agents { username } } }"
)
UPDATE_TEAM = (
    "mutation($id: ID!, $input: TeamInput!) { updateTeam(id: $id, input: $input) "
    "{ id name supervisors { username } agents { username } } }"
)
DELETE_TEAM = "mutation($id: ID!) { deleteTeam(id: $id) }"
UPDATE_USER = (
    "mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { role } }"
)


@dataclass(frozen=True)
class Member:
    id: uuid.UUID
    token: str

    @property
    def global_id(self) -> str:
        return to_global_id("User", self.id)


@dataclass
class Floor:
    """Team A: supervisor sup_a, agents ann and cat. Team B: sup_b, agents bob and cat."""

    people: dict[str, Member]
    calls: dict[str, str]
    """Each agent's one finished call, by the agent's name."""
    team_a: str
    team_b: str

    def __getitem__(self, name: str) -> Member:
        return self.people[name]


def ok(result: GraphQLResponse) -> dict[str, Any]:
    assert not result.errors, result.errors
    assert result.data is not None
    return result.data


async def _member(gql: GraphQLClient, resources: Resources, name: str, role: Role) -> Member:
    user = await make_user(resources.sessions, name, role)
    return Member(user.id, await gql.login(name))


async def _team(
    gql: GraphQLClient, admin: Member, name: str, sups: list[Member], agents: list[Member]
) -> str:
    created = ok(
        await gql(
            CREATE_TEAM,
            {
                "input": {
                    "name": name,
                    "supervisorIds": [s.global_id for s in sups],
                    "agentIds": [a.global_id for a in agents],
                }
            },
            token=admin.token,
        )
    )
    team_id: str = created["createTeam"]["id"]
    return team_id


@pytest.fixture
async def floor(app: FastAPI, gql: GraphQLClient, audio_dir: Path, tmp_path: Path) -> Floor:
    resources = resources_of(app)
    roles = {
        "admin": Role.ADMIN,
        "sup_a": Role.SUPERVISOR,
        "sup_b": Role.SUPERVISOR,
        "ann": Role.AGENT,
        "bob": Role.AGENT,
        "cat": Role.AGENT,
    }
    people = {name: await _member(gql, resources, name, role) for name, role in roles.items()}
    recording = tmp_path / "call.wav"
    recording.write_bytes(tone_bytes(audio_dir, seconds=0.5))
    calls: dict[str, str] = {}
    for name in ("ann", "bob", "cat"):
        call = await finished_call(
            resources.sessions,
            resources.effect_targets,
            people[name].id,
            CallSpec([Turn(SpeakerRole.AGENT, 0, 5, f"salom men {name}word gapiraman")]),
            storage=resources.storage,
            audio=recording,
            redacted_audio=recording,  # what agents and supervisors hear
        )
        calls[name] = to_global_id("Call", call.id)
    team_a = await _team(
        gql, people["admin"], "Team A", [people["sup_a"]], [people["ann"], people["cat"]]
    )
    team_b = await _team(
        gql, people["admin"], "Team B", [people["sup_b"]], [people["bob"], people["cat"]]
    )
    return Floor(people, calls, team_a, team_b)


async def _listed(
    gql: GraphQLClient, token: str, filter: dict[str, Any] | None = None
) -> list[str]:
    data = ok(await gql(CALLS, {"f": filter}, token=token))["calls"]
    names = sorted(edge["node"]["agent"]["username"] for edge in data["edges"])
    assert data["totalCount"] == len(names)
    return names


async def test_each_scope_lists_counts_and_searches_exactly_its_calls(
    gql: GraphQLClient, floor: Floor
) -> None:
    expected = {
        "admin": ["ann", "bob", "cat"],
        "sup_a": ["ann", "cat"],
        "sup_b": ["bob", "cat"],
        "ann": ["ann"],
        "bob": ["bob"],
        "cat": ["cat"],
    }
    for viewer, names in expected.items():
        token = floor[viewer].token
        assert await _listed(gql, token) == names, viewer
        stats = ok(await gql(STATS, token=token))["callStats"]
        assert stats == [{"calls": len(names)}], viewer
        # Full-text search finds a call only inside the scope.
        for agent in ("ann", "bob", "cat"):
            found = await _listed(gql, token, {"search": f"{agent}word"})
            assert found == ([agent] if agent in names else []), (viewer, agent)
        # agentId naming an agent outside the scope narrows to nothing, never widens.
        outside = await _listed(gql, token, {"agentId": floor["bob"].global_id})
        assert outside == (["bob"] if "bob" in names else [])


async def test_a_call_outside_the_scope_is_exactly_a_missing_call(
    gql: GraphQLClient, floor: Floor
) -> None:
    missing = to_global_id("Call", uuid.uuid4())
    for viewer, visible in {
        "sup_a": {"ann", "cat"},
        "sup_b": {"bob", "cat"},
        "ann": {"ann"},
        "admin": {"ann", "bob", "cat"},
    }.items():
        token = floor[viewer].token
        absent = await gql(CALL, {"id": missing}, token=token)
        for agent, call_id in floor.calls.items():
            result = await gql(CALL, {"id": call_id}, token=token)
            node = ok(await gql(NODE, {"id": call_id}, token=token))["node"]
            if agent in visible:
                call = ok(result)["call"]
                assert call["agent"]["username"] == agent
                # The supervisor plays the call: a signed link, which streams.
                assert call["audioUrl"] and "/audio/" in call["audioUrl"]
                assert node == {"id": call_id, "agent": {"username": agent}}
            else:
                assert result.codes == absent.codes == ["NOT_FOUND"], (viewer, agent)
                assert result.errors[0]["message"] == absent.errors[0]["message"]
                assert result.data is None
                assert node is None


async def test_the_audio_link_a_supervisor_gets_streams(
    http: httpx.AsyncClient, gql: GraphQLClient, floor: Floor
) -> None:
    call = ok(await gql(CALL, {"id": floor.calls["ann"]}, token=floor["sup_a"].token))["call"]
    response = await http.get(call["audioUrl"].removeprefix("http://testserver"))
    assert response.status_code == 200
    assert response.content[:4] == b"RIFF"


async def test_a_supervisor_reviews_but_does_not_change_or_manage(
    http: httpx.AsyncClient, gql: GraphQLClient, floor: Floor, audio_dir: Path
) -> None:
    sup = floor["sup_a"].token
    own_team_call, other_call = floor.calls["ann"], floor.calls["bob"]
    for mutation in (
        "mutation($id: ID!) { reprocessCall(id: $id) { id } }",
        "mutation($id: ID!) { deleteCall(id: $id) }",
    ):
        assert (await gql(mutation, {"id": own_team_call}, token=sup)).codes == ["FORBIDDEN"]
        assert (await gql(mutation, {"id": other_call}, token=sup)).codes == ["NOT_FOUND"]
    forbidden: list[tuple[str, dict[str, Any]]] = [
        ("{ users { id } }", {}),
        (
            'mutation { createUser(input: {username: "zed", password: "long-enough-pw"}) { id } }',
            {},
        ),
        (UPDATE_USER, {"id": floor["ann"].global_id, "input": {"fullName": "Ann"}}),
        (CREATE_TEAM, {"input": {"name": "Mine", "agentIds": [floor["bob"].global_id]}}),
        (UPDATE_TEAM, {"id": floor.team_a, "input": {"name": "Team A", "agentIds": []}}),
        (DELETE_TEAM, {"id": floor.team_b}),
        ("{ auditEvents { totalCount } }", {}),
        ("{ webhookEndpoints { id } }", {}),
        (
            'mutation { createWebhookEndpoint(input: {url: "https://example.com/h", '
            "events: [CALL_SUCCEEDED]}) { secret } }",
            {},
        ),
        (
            'mutation($rule: JSON!) { createCategory(input: {name: "x", rule: $rule}) '
            "{ category { id } } }",
            {"rule": {"conditions": [{"type": "PHRASE", "phrases": ["a"]}]}},
        ),
    ]
    for document, variables in forbidden:
        assert (await gql(document, variables, token=sup)).codes == ["FORBIDDEN"], document
    _, result = await upload(http, tone_bytes(audio_dir), token=sup)
    assert result.codes == ["FORBIDDEN"]
    # Nothing changed: the team still has its agents.
    teams = ok(await gql(TEAMS, token=floor["admin"].token))["teams"]
    assert [t["name"] for t in teams] == ["Team A", "Team B"]


async def test_teams_are_listed_for_admins_and_members(gql: GraphQLClient, floor: Floor) -> None:
    def names(viewer: str) -> list[str]:
        return [team["name"] for team in found[viewer]]

    found = {
        viewer: ok(await gql(TEAMS, token=floor[viewer].token))["teams"]
        for viewer in ("admin", "sup_a", "sup_b", "ann", "bob", "cat")
    }
    assert names("admin") == ["Team A", "Team B"]
    assert names("sup_a") == names("ann") == ["Team A"]
    assert names("sup_b") == names("bob") == ["Team B"]
    assert names("cat") == ["Team A", "Team B"]
    assert found["sup_a"][0] == {
        "name": "Team A",
        "supervisors": [{"username": "sup_a"}],
        "agents": [{"username": "ann"}, {"username": "cat"}],
    }
    # User.teams: an admin sees all of a user's teams, a member only the teams they share.
    me = "{ me { teams { name } } }"
    assert ok(await gql(me, token=floor["cat"].token))["me"]["teams"] == [
        {"name": "Team A"},
        {"name": "Team B"},
    ]
    call = ok(
        await gql(
            "query($id: ID!) { call(id: $id) { agent { teams { name } } } }",
            {"id": floor.calls["cat"]},
            token=floor["sup_a"].token,
        )
    )["call"]
    assert call["agent"]["teams"] == [{"name": "Team A"}]
    # node(Team): members and admins; anyone else gets null.
    team_node = "query($id: ID!) { node(id: $id) { ... on Team { name } } }"
    assert ok(await gql(team_node, {"id": floor.team_b}, token=floor["bob"].token))["node"] == {
        "name": "Team B"
    }
    assert ok(await gql(team_node, {"id": floor.team_b}, token=floor["ann"].token))["node"] is None
    # node(User): a supervisor looks up their agents (and themselves), nobody else.
    user_node = "query($id: ID!) { node(id: $id) { ... on User { username } } }"
    for name, visible in (("ann", True), ("cat", True), ("sup_a", True), ("bob", False)):
        found = ok(await gql(user_node, {"id": floor[name].global_id}, token=floor["sup_a"].token))
        assert found["node"] == ({"username": name} if visible else None), name
    assert (
        ok(await gql(user_node, {"id": floor["cat"].global_id}, token=floor["ann"].token))["node"]
        is None
    )


async def test_team_and_role_changes_take_effect_on_the_next_request(
    gql: GraphQLClient, floor: Floor
) -> None:
    admin, sup = floor["admin"].token, floor["sup_a"].token
    assert await _listed(gql, sup) == ["ann", "cat"]

    # Ann leaves Team A: her call is gone for sup_a at once, like a missing one.
    ok(
        await gql(
            UPDATE_TEAM,
            {
                "id": floor.team_a,
                "input": {
                    "name": "Team A",
                    "supervisorIds": [floor["sup_a"].global_id],
                    "agentIds": [floor["cat"].global_id],
                },
            },
            token=admin,
        )
    )
    assert await _listed(gql, sup) == ["cat"]
    assert (await gql(CALL, {"id": floor.calls["ann"]}, token=sup)).codes == ["NOT_FOUND"]

    # Cat becomes a supervisor: she leaves both teams as an agent, and her own call is no
    # longer in anyone's team scope.
    ok(
        await gql(
            UPDATE_USER,
            {"id": floor["cat"].global_id, "input": {"role": "SUPERVISOR"}},
            token=admin,
        )
    )
    assert await _listed(gql, sup) == []
    assert await _listed(gql, floor["sup_b"].token) == ["bob"]
    # The same token works: the role is read per request, not from the token.
    assert await _listed(gql, floor["cat"].token) == []

    # sup_b is demoted to AGENT: no longer supervises Team B, sees only their own calls.
    ok(
        await gql(
            UPDATE_USER, {"id": floor["sup_b"].global_id, "input": {"role": "AGENT"}}, token=admin
        )
    )
    assert await _listed(gql, floor["sup_b"].token) == []
    teams = ok(await gql(TEAMS, token=admin))["teams"]
    assert teams[1] == {"name": "Team B", "supervisors": [], "agents": [{"username": "bob"}]}

    # Deleting a team ends its scope.
    ok(await gql(DELETE_TEAM, {"id": floor.team_a}, token=admin))
    assert ok(await gql(TEAMS, token=admin))["teams"] == [teams[1]]
    assert (await gql(DELETE_TEAM, {"id": floor.team_a}, token=admin)).codes == ["NOT_FOUND"]


async def test_team_bad_input_names_the_field(
    app: FastAPI, gql: GraphQLClient, floor: Floor
) -> None:
    admin = floor["admin"].token
    resources = resources_of(app)
    retired = await make_user(resources.sessions, "retired", Role.SUPERVISOR)
    ok(
        await gql(
            UPDATE_USER,
            {"id": to_global_id("User", retired.id), "input": {"isActive": False}},
            token=admin,
        )
    )
    unknown = to_global_id("User", uuid.uuid4())
    sup, agent = floor["sup_a"].global_id, floor["ann"].global_id
    cases = [
        ({"name": "New", "agentIds": [unknown]}, "input.agentIds", "no active user"),
        ({"name": "New", "supervisorIds": [unknown]}, "input.supervisorIds", "no active user"),
        (
            {"name": "New", "supervisorIds": [to_global_id("User", retired.id)]},
            "input.supervisorIds",
            "no active user",
        ),
        ({"name": "New", "supervisorIds": [agent]}, "input.supervisorIds", "is not a SUPERVISOR"),
        ({"name": "New", "agentIds": [sup]}, "input.agentIds", "is not an AGENT"),
        (
            {"name": "New", "agentIds": [to_global_id("Call", uuid.uuid4())]},
            "input.agentIds",
            "not a user's ID",
        ),
        ({"name": "New", "agentIds": ["garbage"]}, "input.agentIds", "not a user's ID"),
        ({"name": " team  a "}, "input.name", "already exists"),
        ({"name": "   "}, "input.name", "must not be empty"),
        ({"name": "x" * 101}, "input.name", "at most 100"),
    ]
    for team_input, field, message in cases:
        for document, variables in (
            (CREATE_TEAM, {"input": team_input}),
            (UPDATE_TEAM, {"id": floor.team_b, "input": team_input}),
        ):
            result = await gql(document, variables, token=admin)
            assert result.codes == ["BAD_USER_INPUT"], (team_input, result.errors)
            assert result.errors[0]["extensions"]["field"] == field
            assert message in result.errors[0]["message"], result.errors
    # Nothing was written by the refused changes.
    teams = ok(await gql(TEAMS, token=admin))["teams"]
    assert teams == [
        {
            "name": "Team A",
            "supervisors": [{"username": "sup_a"}],
            "agents": [{"username": "ann"}, {"username": "cat"}],
        },
        {
            "name": "Team B",
            "supervisors": [{"username": "sup_b"}],
            "agents": [{"username": "bob"}, {"username": "cat"}],
        },
    ]
    # A team keeping its own name, in another case, is not a duplicate of itself.
    renamed = ok(
        await gql(
            UPDATE_TEAM,
            {"id": floor.team_a, "input": {"name": "TEAM A", "agentIds": [agent, agent]}},
            token=admin,
        )
    )["updateTeam"]
    assert renamed == {
        "id": floor.team_a,
        "name": "TEAM A",
        "supervisors": [],
        "agents": [{"username": "ann"}],
    }
    assert (
        await gql(
            UPDATE_TEAM,
            {"id": to_global_id("Team", uuid.uuid4()), "input": {"name": "Z"}},
            token=admin,
        )
    ).codes == ["NOT_FOUND"]
