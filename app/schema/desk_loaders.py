"""Per-request DataLoaders of the supervisor's desk: a call's categories and scorecards."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from app.db.engine import SessionFactory
from app.db.models import CallCategory, CallScorecard, Category, Scorecard


class DeskLoaders:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions
        self.call_categories = DataLoader[uuid.UUID, list[tuple[CallCategory, Category]]](
            load_fn=self._load_call_categories
        )
        self.category_by_id = DataLoader[uuid.UUID, Category | None](load_fn=self._load_categories)
        self.call_scorecards = DataLoader[uuid.UUID, list[tuple[CallScorecard, Scorecard]]](
            load_fn=self._load_call_scorecards
        )

    async def _load_categories(self, ids: Sequence[uuid.UUID]) -> list[Category | None]:
        async with self._sessions() as session:
            rows = (await session.execute(select(Category).where(Category.id.in_(ids)))).scalars()
            by_id = {row.id: row for row in rows}
        return [by_id.get(category_id) for category_id in ids]

    async def _load_call_categories(
        self, call_ids: Sequence[uuid.UUID]
    ) -> list[list[tuple[CallCategory, Category]]]:
        grouped: dict[uuid.UUID, list[tuple[CallCategory, Category]]] = defaultdict(list)
        async with self._sessions() as session:
            rows = await session.execute(
                select(CallCategory, Category)
                .join(Category, Category.id == CallCategory.category_id)
                .where(CallCategory.call_id.in_(call_ids))
                .order_by(CallCategory.call_id, Category.name)
            )
            for tag, category in rows.tuples():
                grouped[tag.call_id].append((tag, category))
        return [grouped.get(call_id, []) for call_id in call_ids]

    async def _load_call_scorecards(
        self, call_ids: Sequence[uuid.UUID]
    ) -> list[list[tuple[CallScorecard, Scorecard]]]:
        grouped: dict[uuid.UUID, list[tuple[CallScorecard, Scorecard]]] = defaultdict(list)
        async with self._sessions() as session:
            rows = await session.execute(
                select(CallScorecard, Scorecard)
                .join(Scorecard, Scorecard.id == CallScorecard.scorecard_id)
                .where(CallScorecard.call_id.in_(call_ids))
                .order_by(CallScorecard.call_id, Scorecard.created_at, Scorecard.id)
            )
            for result, scorecard in rows.tuples():
                grouped[result.call_id].append((result, scorecard))
        return [grouped.get(call_id, []) for call_id in call_ids]
