"""A call's scorecard results: each result with its scorecard, oldest scorecard first."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from app.db.engine import SessionFactory
from app.db.models import CallScorecard, Scorecard
from app.schema.dataloaders.grouping import grouped_by

ScoredCard = tuple[CallScorecard, Scorecard]


class CallScorecardsLoader(DataLoader[uuid.UUID, list[ScoredCard]]):
    def __init__(self, sessions: SessionFactory) -> None:
        super().__init__(load_fn=self._load)
        self._sessions = sessions

    async def _load(self, call_ids: Sequence[uuid.UUID]) -> list[list[ScoredCard]]:
        query = (
            select(CallScorecard, Scorecard)
            .join(Scorecard, Scorecard.id == CallScorecard.scorecard_id)
            .where(CallScorecard.call_id.in_(call_ids))
            .order_by(CallScorecard.call_id, Scorecard.created_at, Scorecard.id)
        )
        async with self._sessions() as session:
            scored = (await session.execute(query)).tuples()
            return grouped_by(call_ids, scored, lambda pair: pair[0].call_id)
