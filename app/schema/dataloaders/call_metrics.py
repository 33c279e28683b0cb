"""A call's metrics (talk, silence, overlap, interruptions), when it has them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from app.db.engine import SessionFactory
from app.db.models import CallMetrics
from app.schema.dataloaders.grouping import one_each


class CallMetricsLoader(DataLoader[uuid.UUID, CallMetrics | None]):
    def __init__(self, sessions: SessionFactory) -> None:
        super().__init__(load_fn=self._load)
        self._sessions = sessions

    async def _load(self, call_ids: Sequence[uuid.UUID]) -> list[CallMetrics | None]:
        query = select(CallMetrics).where(CallMetrics.call_id.in_(call_ids))
        async with self._sessions() as session:
            metrics = (await session.execute(query)).scalars()
            return one_each(call_ids, metrics, lambda row: row.call_id)
