"""A call's segments, as plain rows of the columns the API serves."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, Text, cast, select

from app.db.models import Segment
from app.schema.dataloaders.base import SessionLoader, grouped_by

SegmentRow = Row[Any]
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


class SegmentsLoader(SessionLoader[uuid.UUID, list[SegmentRow]]):
    """Plain rows, not ORM objects: a 60-minute call has hundreds of segments, and building
    an ORM instance for each cost more than the query."""

    async def fetch(self, call_ids: Sequence[uuid.UUID]) -> list[list[SegmentRow]]:
        rows = await self._rows(
            select(*SEGMENT_COLUMNS)
            .where(Segment.call_id.in_(call_ids))
            .order_by(Segment.call_id, Segment.position)
        )
        return grouped_by(call_ids, rows, lambda row: row.call_id)
