"""A team's members (one query per batch, whatever the number of teams on the page)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from app.schema.dataloaders.base import SessionLoader
from app.services import teams as team_service


class TeamMembersLoader(SessionLoader[uuid.UUID, team_service.Members]):
    async def fetch(self, team_ids: Sequence[uuid.UUID]) -> list[team_service.Members]:
        async with self._sessions() as session:
            found = await team_service.members_of(session, team_ids)
        return [found[team_id] for team_id in team_ids]
