"""Users by id (a call's owner, an audit event's actor, a team's members)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from app.db.models import User
from app.schema.dataloaders.base import SessionLoader, one_each


class UserByIdLoader(SessionLoader[uuid.UUID, User | None]):
    async def fetch(self, ids: Sequence[uuid.UUID]) -> list[User | None]:
        users = await self._scalars(select(User).where(User.id.in_(ids)))
        return one_each(ids, users, lambda user: user.id)
