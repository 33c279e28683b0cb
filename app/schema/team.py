"""GraphQL types of teams: who supervises whom."""

from __future__ import annotations

import uuid

import strawberry

from app.core.ids import to_global_id
from app.db.models import Team as TeamModel
from app.schema.context import Info
from app.schema.node import Node
from app.schema.user import User


@strawberry.type(name="Team")
class Team(Node):
    name: str
    _team_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, team: TeamModel) -> Team:
        return cls(
            id=strawberry.ID(to_global_id("Team", team.id)), name=team.name, _team_id=team.id
        )

    @strawberry.field
    async def supervisors(self, info: Info) -> list[User]:
        members = await info.context.viewer_loaders.members.load(self._team_id)
        return await _users(info, members.supervisor_ids)

    @strawberry.field
    async def agents(self, info: Info) -> list[User]:
        members = await info.context.viewer_loaders.members.load(self._team_id)
        return await _users(info, members.agent_ids)


async def _users(info: Info, user_ids: tuple[uuid.UUID, ...]) -> list[User]:
    users = await info.context.loaders.user_by_id.load_many(list(user_ids))
    return [User.from_row(user) for user in users if user is not None]


@strawberry.input(description="The whole membership: it replaces the team's previous one.")
class TeamInput:
    name: str
    supervisor_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    agent_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
