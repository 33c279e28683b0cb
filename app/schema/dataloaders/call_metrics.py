"""A call's metrics (talk, silence, overlap, interruptions), when it has them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from app.db.models import CallMetrics
from app.schema.dataloaders.base import SessionLoader, one_each


class CallMetricsLoader(SessionLoader[uuid.UUID, CallMetrics | None]):
    async def fetch(self, call_ids: Sequence[uuid.UUID]) -> list[CallMetrics | None]:
        metrics = await self._scalars(select(CallMetrics).where(CallMetrics.call_id.in_(call_ids)))
        return one_each(call_ids, metrics, lambda row: row.call_id)
