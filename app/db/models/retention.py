from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Integer, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base

POLICY_ROW_ID = 1


class RetentionPolicy(Base):
    """The deployment's one retention policy (a single row, id 1). Null days: kept for ever."""

    __tablename__ = "retention_policy"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("audio_days IS NULL OR audio_days >= 0", name="audio_days_not_negative"),
        CheckConstraint(
            "transcript_days IS NULL OR transcript_days >= 0", name="transcript_days_not_negative"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=POLICY_ROW_ID)
    audio_days: Mapped[int | None] = mapped_column(Integer)
    transcript_days: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )
