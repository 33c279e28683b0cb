"""Per-request DataLoaders. Each batch opens its own short session (sibling fields resolve
concurrently), and every nested list of a call page is one query whatever the page size."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Row as SqlRow
from sqlalchemy import Text, cast, select
from strawberry.dataloader import DataLoader

from app.db.engine import SessionFactory
from app.db.models import (
    AnalysisAction,
    AnalysisEntity,
    AnalysisIntent,
    AnalysisIssue,
    AnalysisKeypoint,
    CallAnalysis,
    CallMetrics,
    CallSpeaker,
    Segment,
    User,
)
from app.schema.desk_loaders import DeskLoaders
from app.schema.voiceprint_loader import voiceprint_loader

Row = TypeVar("Row")
SegmentRow = SqlRow[Any]
"""A segment's columns as the API serves them (see SEGMENT_COLUMNS), by attribute name."""
SEGMENT_COLUMNS: tuple[Any, ...] = (
    Segment.call_id,
    Segment.position,
    Segment.speaker,
    Segment.role,
    Segment.channel,
    Segment.start_s,
    Segment.end_s,
    Segment.text,
    # As text: decoded by the GraphQL type only when words are selected.
    cast(Segment.words, Text).label("words_json"),
    Segment.sentiment,
    Segment.sentiment_score,
    Segment.language,
    Segment.confidence,
)


class Loaders:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions
        self.user_by_id = DataLoader[uuid.UUID, User | None](load_fn=self._load_users)
        self.segments = DataLoader[uuid.UUID, list[SegmentRow]](load_fn=self._load_segments)
        self.speakers = self._list_loader(CallSpeaker)
        self.intents = self._list_loader(AnalysisIntent)
        self.entities = self._list_loader(AnalysisEntity)
        self.issues = self._list_loader(AnalysisIssue)
        self.actions = self._list_loader(AnalysisAction)
        self.keypoints = self._list_loader(AnalysisKeypoint)
        self.analysis = self._one_loader(CallAnalysis)
        self.metrics = self._one_loader(CallMetrics)
        self.desk = DeskLoaders(sessions)
        self.voiceprints = voiceprint_loader(sessions)

    async def _load_users(self, ids: Sequence[uuid.UUID]) -> list[User | None]:
        async with self._sessions() as session:
            rows = (await session.execute(select(User).where(User.id.in_(ids)))).scalars()
            by_id = {user.id: user for user in rows}
        return [by_id.get(user_id) for user_id in ids]

    async def _load_segments(self, call_ids: Sequence[uuid.UUID]) -> list[list[SegmentRow]]:
        """Plain rows, not ORM objects: a 60-minute call has hundreds of segments, and
        building an ORM instance for each cost more than the query."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(*SEGMENT_COLUMNS)
                .where(Segment.call_id.in_(call_ids))
                .order_by(Segment.call_id, Segment.position)
            )
            grouped: dict[uuid.UUID, list[SegmentRow]] = defaultdict(list)
            for row in rows:
                grouped[row.call_id].append(row)
        return [grouped.get(call_id, []) for call_id in call_ids]

    def _list_loader(self, model: type[Row]) -> DataLoader[uuid.UUID, list[Row]]:
        """Rows of `model` per call, in `position` order."""
        table: Any = model

        async def load(call_ids: Sequence[uuid.UUID]) -> list[list[Row]]:
            async with self._sessions() as session:
                rows = (
                    await session.execute(
                        select(table)
                        .where(table.call_id.in_(call_ids))
                        .order_by(table.call_id, table.position)
                    )
                ).scalars()
                grouped: dict[uuid.UUID, list[Row]] = defaultdict(list)
                for row in rows:
                    grouped[row.call_id].append(row)
            return [grouped.get(call_id, []) for call_id in call_ids]

        return DataLoader(load_fn=load)

    def _one_loader(self, model: type[Row]) -> DataLoader[uuid.UUID, Row | None]:
        table: Any = model

        async def load(call_ids: Sequence[uuid.UUID]) -> list[Row | None]:
            async with self._sessions() as session:
                rows = (
                    await session.execute(select(table).where(table.call_id.in_(call_ids)))
                ).scalars()
                by_call = {row.call_id: row for row in rows}
            return [by_call.get(call_id) for call_id in call_ids]

        return DataLoader(load_fn=load)
