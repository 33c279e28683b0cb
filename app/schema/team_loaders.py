"""Per-request DataLoaders of teams: a team's members, a user's teams (as the viewer may
see them). One query per batch, whatever the number of teams or users on the page."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence

from strawberry.dataloader import DataLoader

from app.db.engine import SessionFactory
from app.db.models import Team, User
from app.services import teams as team_service


class TeamLoaders:
    def __init__(self, sessions: SessionFactory, viewer: Callable[[], Awaitable[User]]) -> None:
        self._sessions = sessions
        self._viewer = viewer
        self.members = DataLoader[uuid.UUID, team_service.Members](load_fn=self._load_members)
        self.teams_of_user = DataLoader[uuid.UUID, list[Team]](load_fn=self._load_teams_of_users)

    async def _load_members(self, team_ids: Sequence[uuid.UUID]) -> list[team_service.Members]:
        async with self._sessions() as session:
            found = await team_service.members_of(session, team_ids)
        return [found[team_id] for team_id in team_ids]

    async def _load_teams_of_users(self, user_ids: Sequence[uuid.UUID]) -> list[list[Team]]:
        viewer = await self._viewer()
        async with self._sessions() as session:
            found = await team_service.teams_of_users(session, viewer, user_ids)
        return [found[user_id] for user_id in user_ids]
