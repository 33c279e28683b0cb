"""The audit trail: who did what, append-only.

Rows name users and calls by id without foreign keys: an event outlives the call it is
about (`call.deleted`), and nothing may rewrite it. A trigger (migration 0005) refuses every
UPDATE, and every DELETE except the audit log's own retention sweep (see
`app.services.audit.sweep`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UUIDPrimaryKey


class AuditEvent(UUIDPrimaryKey, Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_actor_id_seq", "actor_id", "seq"),
        Index("ix_audit_events_call_id_seq", "call_id", "seq"),
    )

    # Insertion order: the newest-first listing and its cursors (many events of one
    # transaction share `at`).
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    action: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[uuid.UUID | None] = mapped_column()
    call_id: Mapped[uuid.UUID | None] = mapped_column()
    target_user_id: Mapped[uuid.UUID | None] = mapped_column()
    address: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
