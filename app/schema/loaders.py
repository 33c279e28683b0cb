"""Per-request DataLoaders: each batch opens its own short session."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from app.db.engine import SessionFactory
from app.db.models import User


class Loaders:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions
        self.user_by_id = DataLoader[uuid.UUID, User | None](load_fn=self._load_users)

    async def _load_users(self, ids: Sequence[uuid.UUID]) -> list[User | None]:
        async with self._sessions() as session:
            rows = (await session.execute(select(User).where(User.id.in_(ids)))).scalars()
            by_id = {user.id: user for user in rows}
        return [by_id.get(user_id) for user_id in ids]
