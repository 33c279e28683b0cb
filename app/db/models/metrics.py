from __future__ import annotations

import uuid

from sqlalchemy import (
    Enum,
    Float,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.enums import RoleSource, SpeakerRole
from app.db.base import Base, call_reference, identity_key


class CallMetrics(Base):
    __tablename__ = "call_metrics"

    call_id: Mapped[uuid.UUID] = call_reference(primary_key=True)
    duration_s: Mapped[float] = mapped_column(Float)
    talk_s: Mapped[float] = mapped_column(Float)
    silence_s: Mapped[float] = mapped_column(Float)
    overlap_s: Mapped[float] = mapped_column(Float)
    interruptions: Mapped[int] = mapped_column(Integer)


class CallSpeaker(Base):
    """A speaker of a call: label, role, source channel and talk statistics."""

    __tablename__ = "call_speakers"
    __table_args__ = (
        UniqueConstraint("call_id", "label"),
        # callStats sums the agents' talk ratio per call from the index alone.
        Index(
            "ix_call_speakers_call_id_role", "call_id", "role", postgresql_include=["talk_ratio"]
        ),
    )

    id: Mapped[int] = identity_key()
    call_id: Mapped[uuid.UUID] = call_reference()
    position: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(64))
    role: Mapped[SpeakerRole] = mapped_column(Enum(SpeakerRole, name="speaker_role"))
    channel: Mapped[int | None] = mapped_column(Integer)
    talk_s: Mapped[float] = mapped_column(Float)
    talk_ratio: Mapped[float] = mapped_column(Float)
    words_per_minute: Mapped[float | None] = mapped_column(Float)
    turns: Mapped[int] = mapped_column(Integer)
    longest_monologue_s: Mapped[float] = mapped_column(Float)
    role_source: Mapped[RoleSource] = mapped_column(
        Enum(RoleSource, name="role_source"), default=RoleSource.NONE, server_default="NONE"
    )
    role_confidence: Mapped[float | None] = mapped_column(Float)
