"""A call's analysis (summary, sentiment, language), when it has one."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from app.db.engine import SessionFactory
from app.db.models import CallAnalysis
from app.schema.dataloaders.grouping import one_each


class CallAnalysisLoader(DataLoader[uuid.UUID, CallAnalysis | None]):
    def __init__(self, sessions: SessionFactory) -> None:
        super().__init__(load_fn=self._load)
        self._sessions = sessions

    async def _load(self, call_ids: Sequence[uuid.UUID]) -> list[CallAnalysis | None]:
        query = select(CallAnalysis).where(CallAnalysis.call_id.in_(call_ids))
        async with self._sessions() as session:
            analyses = (await session.execute(query)).scalars()
            return one_each(call_ids, analyses, lambda analysis: analysis.call_id)
