"""The DataLoader of `User.voiceprint`: one query for every user of a page, reading what the
API shows of a voiceprint and never its embedding."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from app.db.engine import SessionFactory
from app.db.models import Voiceprint


@dataclass(frozen=True, slots=True)
class VoiceprintSummary:
    enrolled: bool
    calls: int
    updated_at: datetime


def voiceprint_loader(sessions: SessionFactory) -> DataLoader[uuid.UUID, VoiceprintSummary | None]:
    async def load(user_ids: Sequence[uuid.UUID]) -> list[VoiceprintSummary | None]:
        async with sessions() as session:
            rows = await session.execute(
                select(
                    Voiceprint.user_id, Voiceprint.enrolled, Voiceprint.calls, Voiceprint.updated_at
                ).where(Voiceprint.user_id.in_(user_ids))
            )
            found = {
                row.user_id: VoiceprintSummary(row.enrolled, row.calls, row.updated_at)
                for row in rows
            }
        return [found.get(user_id) for user_id in user_ids]

    return DataLoader(load_fn=load)
