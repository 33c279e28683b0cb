"""A call's speakers, in their order in the call."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from app.db.models import CallSpeaker
from app.schema.dataloaders.base import SessionLoader, grouped_by


class CallSpeakersLoader(SessionLoader[uuid.UUID, list[CallSpeaker]]):
    async def fetch(self, call_ids: Sequence[uuid.UUID]) -> list[list[CallSpeaker]]:
        speakers = await self._scalars(
            select(CallSpeaker)
            .where(CallSpeaker.call_id.in_(call_ids))
            .order_by(CallSpeaker.call_id, CallSpeaker.position)
        )
        return grouped_by(call_ids, speakers, lambda speaker: speaker.call_id)
