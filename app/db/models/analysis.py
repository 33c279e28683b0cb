from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    DateTime,
    Enum,
    Float,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.core.enums import Sentiment
from app.db.base import Base, call_reference, identity_key


class CallAnalysis(Base):
    __tablename__ = "call_analyses"
    __table_args__ = (
        Index("ix_call_analyses_language", "language"),
        Index("ix_call_analyses_sentiment", "sentiment"),
    )

    call_id: Mapped[uuid.UUID] = call_reference(primary_key=True)
    language: Mapped[str] = mapped_column(String(8))
    summary: Mapped[str] = mapped_column(Text)
    sentiment: Mapped[Sentiment] = mapped_column(Enum(Sentiment, name="sentiment"))
    sentiment_score: Mapped[float] = mapped_column(Float)
    backend: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AnalysisListItem:
    """Rows of an ordered list that belongs to one call."""

    id: Mapped[int] = identity_key()
    call_id: Mapped[uuid.UUID] = call_reference(index=True)
    position: Mapped[int] = mapped_column(Integer)


class AnalysisIntent(AnalysisListItem, Base):
    __tablename__ = "analysis_intents"

    name: Mapped[str] = mapped_column(String(128))
    confidence: Mapped[float] = mapped_column(Float)
    evidence: Mapped[list[int]] = mapped_column(ARRAY(Integer), default=list)


class AnalysisEntity(AnalysisListItem, Base):
    __tablename__ = "analysis_entities"

    type: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(Text)
    speaker: Mapped[str | None] = mapped_column(String(64))
    start_s: Mapped[float | None] = mapped_column(Float)
    segment_index: Mapped[int | None] = mapped_column(Integer)


class AnalysisIssue(AnalysisListItem, Base):
    __tablename__ = "analysis_issues"

    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    evidence: Mapped[list[int]] = mapped_column(ARRAY(Integer), default=list)


class AnalysisAction(AnalysisListItem, Base):
    __tablename__ = "analysis_actions"

    description: Mapped[str] = mapped_column(Text)


class AnalysisKeypoint(AnalysisListItem, Base):
    __tablename__ = "analysis_keypoints"

    text: Mapped[str] = mapped_column(Text)
    segment_index: Mapped[int | None] = mapped_column(Integer)
