"""Voiceprints: what is learned of an agent's voice, as embeddings only (never audio)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, REAL
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, call_reference, identity_key


class SampleKind(StrEnum):
    AGENT = "AGENT"
    """The agent's voice in one call: the agent's channel, or the speaker that matched."""
    CANDIDATE = "CANDIDATE"
    """One voice of a mono call before the agent's voice is known; deleted at enrolment."""


class VoiceprintSample(Base):
    """One call's voice centroid for an agent's voiceprint. A reprocessed call replaces its
    samples, so learning is idempotent; deleting the call or the user deletes them."""

    __tablename__ = "voiceprint_samples"
    __table_args__ = (UniqueConstraint("user_id", "call_id", "speaker"),)

    id: Mapped[int] = identity_key()
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    call_id: Mapped[uuid.UUID] = call_reference()
    speaker: Mapped[str] = mapped_column(String(64))
    kind: Mapped[SampleKind] = mapped_column(Enum(SampleKind, name="voiceprint_sample_kind"))
    model: Mapped[str] = mapped_column(String(64))
    embedding: Mapped[list[float]] = mapped_column(ARRAY(REAL))
    speech_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class Voiceprint(Base):
    """An agent's voiceprint: the mean of their AGENT samples, once learned from enough
    calls (`enrolled`); until then a row that counts the calls seen."""

    __tablename__ = "voiceprints"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(64))
    embedding: Mapped[list[float] | None] = mapped_column(ARRAY(REAL))
    enrolled: Mapped[bool] = mapped_column(Boolean, default=False)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
