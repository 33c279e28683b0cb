"""A call's scorecard results: each result with its scorecard, oldest scorecard first."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from app.db.models import CallScorecard, Scorecard
from app.schema.dataloaders.base import SessionLoader, grouped_by

ScoredCard = tuple[CallScorecard, Scorecard]


class CallScorecardsLoader(SessionLoader[uuid.UUID, list[ScoredCard]]):
    async def fetch(self, call_ids: Sequence[uuid.UUID]) -> list[list[ScoredCard]]:
        scored = await self._rows(
            select(CallScorecard, Scorecard)
            .join(Scorecard, Scorecard.id == CallScorecard.scorecard_id)
            .where(CallScorecard.call_id.in_(call_ids))
            .order_by(CallScorecard.call_id, Scorecard.created_at, Scorecard.id)
        )
        pairs = [(result, scorecard) for result, scorecard in scored]
        return grouped_by(call_ids, pairs, lambda pair: pair[0].call_id)
