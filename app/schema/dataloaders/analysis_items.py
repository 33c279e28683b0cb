"""One of the analysis's ordered lists of a call (intents, entities, issues, actions, key
points): the tables that share the `AnalysisListItem` columns."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import select

from app.db.engine import SessionFactory
from app.db.models.analysis import AnalysisListItem
from app.schema.dataloaders.base import SessionLoader, grouped_by

ItemRow = TypeVar("ItemRow", bound=AnalysisListItem)


class AnalysisItemsLoader(SessionLoader[uuid.UUID, list[ItemRow]]):
    def __init__(self, sessions: SessionFactory, table: type[ItemRow]) -> None:
        super().__init__(sessions)
        self._table = table

    async def fetch(self, call_ids: Sequence[uuid.UUID]) -> list[list[ItemRow]]:
        table = self._table
        items = await self._scalars(
            select(table).where(table.call_id.in_(call_ids)).order_by(table.call_id, table.position)
        )
        return grouped_by(call_ids, items, lambda item: item.call_id)
