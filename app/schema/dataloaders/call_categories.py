"""A call's categories: each tag with its category, by category name."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from app.db.models import CallCategory, Category
from app.schema.dataloaders.base import SessionLoader, grouped_by

TaggedCategory = tuple[CallCategory, Category]


class CallCategoriesLoader(SessionLoader[uuid.UUID, list[TaggedCategory]]):
    async def fetch(self, call_ids: Sequence[uuid.UUID]) -> list[list[TaggedCategory]]:
        tagged = await self._rows(
            select(CallCategory, Category)
            .join(Category, Category.id == CallCategory.category_id)
            .where(CallCategory.call_id.in_(call_ids))
            .order_by(CallCategory.call_id, Category.name)
        )
        return grouped_by(call_ids, [(tag, category) for tag, category in tagged], _call_of)


def _call_of(pair: TaggedCategory) -> uuid.UUID:
    return pair[0].call_id
