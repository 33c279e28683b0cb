"""A user's teams as the viewer may see them (one query per batch of users)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence

from app.db.engine import SessionFactory
from app.db.models import Team, User
from app.schema.dataloaders.base import SessionLoader
from app.services import teams as team_service


class TeamsOfUserLoader(SessionLoader[uuid.UUID, list[Team]]):
    def __init__(self, sessions: SessionFactory, viewer: Callable[[], Awaitable[User]]) -> None:
        super().__init__(sessions)
        self._viewer = viewer

    async def fetch(self, user_ids: Sequence[uuid.UUID]) -> list[list[Team]]:
        viewer = await self._viewer()
        async with self._sessions() as session:
            found = await team_service.teams_of_users(session, viewer, user_ids)
        return [found[user_id] for user_id in user_ids]
