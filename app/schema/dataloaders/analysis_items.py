"""One of the analysis's ordered lists of a call (intents, entities, issues, actions, key
points): the tables that share the `AnalysisListItem` columns."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Generic, TypeVar

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from app.db.engine import SessionFactory
from app.db.models.analysis import AnalysisListItem
from app.schema.dataloaders.grouping import grouped_by

ItemRow = TypeVar("ItemRow", bound=AnalysisListItem)


class AnalysisItemsLoader(DataLoader[uuid.UUID, list[ItemRow]], Generic[ItemRow]):
    def __init__(self, sessions: SessionFactory, table: type[ItemRow]) -> None:
        super().__init__(load_fn=self._load)
        self._sessions = sessions
        self._table = table

    async def _load(self, call_ids: Sequence[uuid.UUID]) -> list[list[ItemRow]]:
        table = self._table
        query = (
            select(table).where(table.call_id.in_(call_ids)).order_by(table.call_id, table.position)
        )
        async with self._sessions() as session:
            items = (await session.execute(query)).scalars()
            return grouped_by(call_ids, items, lambda item: item.call_id)
