"""Categories by id (the category a re-evaluation run is about)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from app.db.models import Category
from app.schema.dataloaders.base import SessionLoader, one_each


class CategoryByIdLoader(SessionLoader[uuid.UUID, Category | None]):
    async def fetch(self, ids: Sequence[uuid.UUID]) -> list[Category | None]:
        categories = await self._scalars(select(Category).where(Category.id.in_(ids)))
        return one_each(ids, categories, lambda category: category.id)
