from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, Timestamps, UUIDPrimaryKey


class CallStatus(StrEnum):
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAIL = "FAIL"


class PipelineStage(StrEnum):
    QUEUED = "QUEUED"
    DECODING = "DECODING"
    DIARIZING = "DIARIZING"
    TRANSCRIBING = "TRANSCRIBING"
    ANALYZING = "ANALYZING"
    DONE = "DONE"


class Call(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_owner_id_created_at", "owner_id", "created_at", "id"),
        Index("ix_calls_created_at", "created_at", "id"),
        Index("ix_calls_status", "status"),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_range"),
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    filename: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(512), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    duration_s: Mapped[float | None] = mapped_column(Float)
    channels: Mapped[int | None] = mapped_column(Integer)
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    codec: Mapped[str | None] = mapped_column(String(64))

    status: Mapped[CallStatus] = mapped_column(
        Enum(CallStatus, name="call_status"), default=CallStatus.RUNNING
    )
    stage: Mapped[PipelineStage] = mapped_column(
        Enum(PipelineStage, name="pipeline_stage"), default=PipelineStage.QUEUED
    )
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # Results that belong to the call as a whole, replaced with the rest of the results on
    # SUCCESS: [{"language", "share"}] largest first, and [{"code", "message"}].
    languages: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    warnings: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )

    # Per-call speaker-count hints; null falls back to the worker's settings.
    num_speakers: Mapped[int | None] = mapped_column(Integer)
    min_speakers: Mapped[int | None] = mapped_column(Integer)
    max_speakers: Mapped[int | None] = mapped_column(Integer)

    # The recording with personal data masked (what agents and supervisors hear), and the
    # spans masked in it: [{"type", "start_s", "end_s"}]. Replaced with the results. When
    # the original is not kept, `storage_key` names this same copy.
    redacted_storage_key: Mapped[str | None] = mapped_column(String(512), unique=True)
    redactions: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    # Retention: a call on legal hold is never expired. `audio_deleted_at` is set when the
    # sweep takes the recording (from then on it is never served); `audio_purge_pending`
    # stays true until both stored objects are gone, so a sweep that died half way finishes
    # the job on its next run.
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    audio_deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    audio_purge_pending: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    transcript_deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
