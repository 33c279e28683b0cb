"""A call's speakers, in their order in the call."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from app.db.engine import SessionFactory
from app.db.models import CallSpeaker
from app.schema.dataloaders.grouping import grouped_by


class CallSpeakersLoader(DataLoader[uuid.UUID, list[CallSpeaker]]):
    def __init__(self, sessions: SessionFactory) -> None:
        super().__init__(load_fn=self._load)
        self._sessions = sessions

    async def _load(self, call_ids: Sequence[uuid.UUID]) -> list[list[CallSpeaker]]:
        query = (
            select(CallSpeaker)
            .where(CallSpeaker.call_id.in_(call_ids))
            .order_by(CallSpeaker.call_id, CallSpeaker.position)
        )
        async with self._sessions() as session:
            speakers = (await session.execute(query)).scalars()
            return grouped_by(call_ids, speakers, lambda speaker: speaker.call_id)
