"""Supervisor's desk: categories and scorecards (rules as validated JSON data), their
per-call results, background re-evaluation runs, and webhook endpoints with their deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, Timestamps, UUIDPrimaryKey, call_reference, identity_key


class Category(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "categories"

    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    # A validated `app.rules.model.Rule`, stored in its JSON form.
    rule: Mapped[dict[str, Any]] = mapped_column(JSONB)


class Scorecard(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "scorecards"

    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    # Validated `app.rules.model.ScorecardItem`s in their JSON form.
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)


class CallCategory(Base):
    """A category a finished call matched, with the evidence."""

    __tablename__ = "call_categories"
    __table_args__ = (Index("ix_call_categories_category_id_call_id", "category_id", "call_id"),)

    call_id: Mapped[uuid.UUID] = call_reference(primary_key=True)
    category_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("categories.id", ondelete="CASCADE"), primary_key=True
    )
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)


class CallScorecard(Base):
    """A finished call scored against one scorecard: 0..1 and the items with evidence."""

    __tablename__ = "call_scorecards"
    __table_args__ = (
        Index("ix_call_scorecards_scorecard_id", "scorecard_id"),
        # callStats averages a call's scores from the index alone.
        Index("ix_call_scorecards_call_id_score", "call_id", postgresql_include=["score"]),
    )

    call_id: Mapped[uuid.UUID] = call_reference(primary_key=True)
    scorecard_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("scorecards.id", ondelete="CASCADE"), primary_key=True
    )
    score: Mapped[float] = mapped_column(Float)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)


class EvaluationStatus(StrEnum):
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAIL = "FAIL"
    SUPERSEDED = "SUPERSEDED"


class RuleEvaluation(UUIDPrimaryKey, Timestamps, Base):
    """A background re-evaluation of every finished call against the current rules, started
    by a change to a category or scorecard. A newer run supersedes an older one."""

    __tablename__ = "rule_evaluations"

    status: Mapped[EvaluationStatus] = mapped_column(
        Enum(EvaluationStatus, name="evaluation_status"), default=EvaluationStatus.RUNNING
    )
    reason: Mapped[str] = mapped_column(String(200))
    total: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookEvent(StrEnum):
    CALL_SUCCEEDED = "CALL_SUCCEEDED"
    CALL_FAILED = "CALL_FAILED"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class WebhookEndpoint(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(Text)
    events: Mapped[list[WebhookEvent]] = mapped_column(
        ARRAY(Enum(WebhookEvent, name="webhook_event"))
    )
    # Needed in the clear to sign deliveries; never returned by the API after creation.
    secret: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class WebhookDelivery(UUIDPrimaryKey, Base):
    """One event for one endpoint; its attempts are `WebhookAttempt` rows."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint_id_created_at", "endpoint_id", "created_at", "id"),
        Index("ix_webhook_deliveries_created_at", "created_at", "id"),
    )

    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    # No foreign key: the log outlives a deleted call.
    call_id: Mapped[uuid.UUID] = mapped_column(index=True)
    event: Mapped[WebhookEvent] = mapped_column(Enum(WebhookEvent, name="webhook_event"))
    # The exact bytes signed and sent on every attempt.
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(DeliveryStatus, name="delivery_status"), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = identity_key()
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
