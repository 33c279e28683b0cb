"""Users by id (a call's owner, an audit event's actor, a team's members)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from app.db.engine import SessionFactory
from app.db.models import User
from app.schema.dataloaders.grouping import one_each


class UserByIdLoader(DataLoader[uuid.UUID, User | None]):
    def __init__(self, sessions: SessionFactory) -> None:
        super().__init__(load_fn=self._load)
        self._sessions = sessions

    async def _load(self, ids: Sequence[uuid.UUID]) -> list[User | None]:
        async with self._sessions() as session:
            users = (await session.execute(select(User).where(User.id.in_(ids)))).scalars()
            return one_each(ids, users, lambda user: user.id)
