"""Team resolvers: translate GraphQL arguments to the teams service and back."""

from __future__ import annotations

import uuid

import strawberry

from app.core.errors import BadUserInput, ClientError
from app.core.ids import parse_typed_id
from app.schema.context import Info
from app.schema.team import Team, TeamInput
from app.services import teams as team_service


async def teams(info: Info) -> list[Team]:
    viewer = await info.context.require_viewer()
    async with info.context.session() as session:
        return [Team.from_row(team) for team in await team_service.list_teams(session, viewer)]


def _user_ids(ids: list[strawberry.ID], field_name: str) -> list[uuid.UUID]:
    parsed: list[uuid.UUID] = []
    for global_id in ids:
        try:
            parsed.append(parse_typed_id(global_id, "User"))
        except ClientError as exc:
            # An id that is not a user's is the input's fault, named as such.
            raise BadUserInput(
                f"{field_name}: '{global_id[:64]}' is not a user's ID", field=field_name
            ) from exc
    return parsed


def _spec(input: TeamInput) -> team_service.TeamSpec:
    return team_service.TeamSpec(
        name=input.name,
        supervisor_ids=_user_ids(input.supervisor_ids, "input.supervisorIds"),
        agent_ids=_user_ids(input.agent_ids, "input.agentIds"),
    )


async def create_team(info: Info, input: TeamInput) -> Team:
    spec = _spec(input)
    async with info.context.transaction() as session:
        team = await team_service.create_team(session, await info.context.actor(), spec)
    return Team.from_row(team)


async def update_team(info: Info, id: strawberry.ID, input: TeamInput) -> Team:
    team_id = parse_typed_id(id, "Team")
    spec = _spec(input)
    async with info.context.transaction() as session:
        team = await team_service.update_team(session, await info.context.actor(), team_id, spec)
    return Team.from_row(team)


async def delete_team(info: Info, id: strawberry.ID) -> strawberry.ID:
    team_id = parse_typed_id(id, "Team")
    async with info.context.transaction() as session:
        await team_service.delete_team(session, await info.context.actor(), team_id)
    return id
