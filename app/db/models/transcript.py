from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import (
    Computed,
    Enum,
    Float,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from app.core.enums import Sentiment, SpeakerRole
from app.db.base import Base, call_reference, identity_key


class Segment(Base):
    """One speaker turn. Words are a JSON array on the row: a call's words are always read
    together with their segment, and one row per word would mean tens of thousands of rows
    per hour of audio."""

    __tablename__ = "segments"
    __table_args__ = (
        Index("ix_segments_call_id_position", "call_id", "position", unique=True),
        Index("ix_segments_text_search", "text_search", postgresql_using="gin"),
    )

    id: Mapped[int] = identity_key()
    call_id: Mapped[uuid.UUID] = call_reference()
    position: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(64))
    role: Mapped[SpeakerRole] = mapped_column(
        Enum(SpeakerRole, name="speaker_role"), default=SpeakerRole.UNKNOWN
    )
    channel: Mapped[int | None] = mapped_column(Integer)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    words: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    sentiment: Mapped[Sentiment | None] = mapped_column(Enum(Sentiment, name="sentiment"))
    sentiment_score: Mapped[float | None] = mapped_column(Float)
    language: Mapped[str | None] = mapped_column(String(8))
    confidence: Mapped[float | None] = mapped_column(Float)
    # 'simple' configuration: transcripts mix Uzbek, Russian and English, and no single
    # stemmer fits all three.
    # Deferred: only the search filter reads it, and loading it with every segment would
    # roughly double what a transcript read transfers and decodes.
    text_search: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed("to_tsvector('simple'::regconfig, text)", persisted=True),
        deferred=True,
    )
