"""A call's categories: each tag with its category, by category name."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from app.db.engine import SessionFactory
from app.db.models import CallCategory, Category
from app.schema.dataloaders.grouping import grouped_by

TaggedCategory = tuple[CallCategory, Category]


class CallCategoriesLoader(DataLoader[uuid.UUID, list[TaggedCategory]]):
    def __init__(self, sessions: SessionFactory) -> None:
        super().__init__(load_fn=self._load)
        self._sessions = sessions

    async def _load(self, call_ids: Sequence[uuid.UUID]) -> list[list[TaggedCategory]]:
        query = (
            select(CallCategory, Category)
            .join(Category, Category.id == CallCategory.category_id)
            .where(CallCategory.call_id.in_(call_ids))
            .order_by(CallCategory.call_id, Category.name)
        )
        async with self._sessions() as session:
            tagged = (await session.execute(query)).tuples()
            return grouped_by(call_ids, tagged, lambda pair: pair[0].call_id)
