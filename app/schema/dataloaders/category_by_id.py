"""Categories by id (the category a re-evaluation run is about)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from app.db.engine import SessionFactory
from app.db.models import Category
from app.schema.dataloaders.grouping import one_each


class CategoryByIdLoader(DataLoader[uuid.UUID, Category | None]):
    def __init__(self, sessions: SessionFactory) -> None:
        super().__init__(load_fn=self._load)
        self._sessions = sessions

    async def _load(self, ids: Sequence[uuid.UUID]) -> list[Category | None]:
        query = select(Category).where(Category.id.in_(ids))
        async with self._sessions() as session:
            categories = (await session.execute(query)).scalars()
            return one_each(ids, categories, lambda category: category.id)
