"""`User.voiceprint`: one query for every user of a page, reading what the API shows of a
voiceprint and never its embedding."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from app.db.engine import SessionFactory
from app.db.models import Voiceprint
from app.schema.dataloaders.grouping import one_each


@dataclass(frozen=True, slots=True)
class VoiceprintSummary:
    user_id: uuid.UUID
    enrolled: bool
    calls: int
    updated_at: datetime


class VoiceprintLoader(DataLoader[uuid.UUID, VoiceprintSummary | None]):
    def __init__(self, sessions: SessionFactory) -> None:
        super().__init__(load_fn=self._load)
        self._sessions = sessions

    async def _load(self, user_ids: Sequence[uuid.UUID]) -> list[VoiceprintSummary | None]:
        query = select(
            Voiceprint.user_id, Voiceprint.enrolled, Voiceprint.calls, Voiceprint.updated_at
        ).where(Voiceprint.user_id.in_(user_ids))
        async with self._sessions() as session:
            rows = await session.execute(query)
            summaries = (VoiceprintSummary(*row) for row in rows)
            return one_each(user_ids, summaries, lambda summary: summary.user_id)
