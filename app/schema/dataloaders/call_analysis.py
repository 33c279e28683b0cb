"""A call's analysis (summary, sentiment, language), when it has one."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from app.db.models import CallAnalysis
from app.schema.dataloaders.base import SessionLoader, one_each


class CallAnalysisLoader(SessionLoader[uuid.UUID, CallAnalysis | None]):
    async def fetch(self, call_ids: Sequence[uuid.UUID]) -> list[CallAnalysis | None]:
        query = select(CallAnalysis).where(CallAnalysis.call_id.in_(call_ids))
        return one_each(call_ids, await self._scalars(query), lambda analysis: analysis.call_id)
