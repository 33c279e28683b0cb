"""`User.voiceprint`: one query for every user of a page, reading what the API shows of a
voiceprint and never its embedding."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.db.models import Voiceprint
from app.schema.dataloaders.base import SessionLoader, one_each


@dataclass(frozen=True, slots=True)
class VoiceprintSummary:
    user_id: uuid.UUID
    enrolled: bool
    calls: int
    updated_at: datetime


class VoiceprintLoader(SessionLoader[uuid.UUID, VoiceprintSummary | None]):
    async def fetch(self, user_ids: Sequence[uuid.UUID]) -> list[VoiceprintSummary | None]:
        rows = await self._rows(
            select(
                Voiceprint.user_id, Voiceprint.enrolled, Voiceprint.calls, Voiceprint.updated_at
            ).where(Voiceprint.user_id.in_(user_ids))
        )
        summaries = [VoiceprintSummary(*row) for row in rows]
        return one_each(user_ids, summaries, lambda summary: summary.user_id)
