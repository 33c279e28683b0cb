"""The audit trail: who did what, to which call or user, from where and when.

A change is recorded in the transaction of the change (`record(session, ...)` beside the
change itself, committed or rolled back with it). A read is recorded right after the read
and before the answer goes out (`record_committed`, its own short transaction): an answer
that was sent always has its event; a failed audit write fails the read.

Nothing changes or deletes an event: the table's trigger refuses UPDATE and DELETE, except
the DELETE of rows older than the cut-off that `sweep` (AUDIT_RETENTION_DAYS) sets for its
own transaction.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import BadUserInput
from app.db.engine import SessionFactory
from app.db.models import AuditEvent
from app.services.pages import Page

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_ADDRESS_CHARS = 64
MAX_DETAIL_CHARS = 2000


class AuditAction(StrEnum):
    CALL_VIEWED = "call.viewed"
    """A call's detail, transcript or analysis read by a person (not the list page)."""
    CALL_AUDIO_OPENED = "call.audio_opened"
    """An audio URL issued, or the recording streamed from its start by the audio route."""
    CALL_UPLOADED = "call.uploaded"
    CALL_REPROCESSED = "call.reprocessed"
    CALL_DELETED = "call.deleted"
    USER_LOGIN = "user.login"
    USER_LOGIN_FAILED = "user.login_failed"
    USER_CHANGED = "user.changed"
    TEAM_CHANGED = "team.changed"
    RETENTION_CHANGED = "retention.changed"
    CALL_LEGAL_HOLD_CHANGED = "call.legal_hold_changed"
    VOICEPRINT_DELETED = "voiceprint.deleted"
    CALL_AUDIO_EXPIRED = "call.audio_expired"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts, and from which client address; `user_id` None is the system."""

    user_id: uuid.UUID | None
    address: str | None = None


SYSTEM = Actor(user_id=None)


def record(
    session: AsyncSession,
    action: AuditAction,
    *,
    actor_id: uuid.UUID | None = None,
    call_id: uuid.UUID | None = None,
    target_user_id: uuid.UUID | None = None,
    address: str | None = None,
    detail: str | None = None,
) -> AuditEvent:
    """Adds an event to the session's transaction: it is written with the change it
    records, or not at all."""
    event = AuditEvent(
        action=AuditAction(action).value,
        actor_id=actor_id,
        call_id=call_id,
        target_user_id=target_user_id,
        address=address[:MAX_ADDRESS_CHARS] if address else None,
        detail=detail[:MAX_DETAIL_CHARS] if detail else None,
    )
    session.add(event)
    return event


def record_by(
    session: AsyncSession,
    action: AuditAction,
    actor: Actor,
    *,
    call_id: uuid.UUID | None = None,
    target_user_id: uuid.UUID | None = None,
    detail: str | None = None,
) -> AuditEvent:
    return record(
        session,
        action,
        actor_id=actor.user_id,
        call_id=call_id,
        target_user_id=target_user_id,
        address=actor.address,
        detail=detail,
    )


async def record_committed(
    sessions: SessionFactory,
    action: AuditAction,
    actor: Actor,
    *,
    call_ids: Collection[uuid.UUID] = (),
    target_user_id: uuid.UUID | None = None,
    detail: str | None = None,
) -> None:
    """Events of a read (one per call, or one without a call), committed before this
    returns."""
    async with sessions() as session, session.begin():
        for call_id in call_ids or (None,):
            record_by(
                session,
                action,
                actor,
                call_id=call_id,
                target_user_id=target_user_id,
                detail=detail,
            )


# --- reading the trail ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditFilters:
    actor_id: uuid.UUID | None = None
    call_id: uuid.UUID | None = None
    action: str | None = None
    after: datetime | None = None
    before: datetime | None = None


def encode_cursor(event: AuditEvent) -> str:
    return base64.urlsafe_b64encode(f"audit:{event.seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, _, seq = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        if kind != "audit":
            raise ValueError(kind)
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadUserInput("Invalid pagination cursor", field="after") from exc


def _clauses(filters: AuditFilters) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if filters.action is not None:
        try:
            action = AuditAction(filters.action.strip())
        except ValueError as exc:
            known = ", ".join(a.value for a in AuditAction)
            raise BadUserInput(
                f"filter.action must be one of: {known}", field="filter.action"
            ) from exc
        clauses.append(AuditEvent.action == action.value)
    if filters.actor_id is not None:
        clauses.append(AuditEvent.actor_id == filters.actor_id)
    if filters.call_id is not None:
        clauses.append(AuditEvent.call_id == filters.call_id)
    if filters.after is not None:
        clauses.append(AuditEvent.at >= filters.after)
    if filters.before is not None:
        clauses.append(AuditEvent.at < filters.before)
    return clauses


async def list_events(
    session: AsyncSession, filters: AuditFilters, *, first: int | None, after: str | None
) -> Page[AuditEvent]:
    """Newest first, keyset-paginated on insertion order."""
    size = DEFAULT_PAGE_SIZE if first is None else first
    if size < 0 or size > MAX_PAGE_SIZE:
        raise BadUserInput(f"first must be between 0 and {MAX_PAGE_SIZE}", field="first")
    clauses = _clauses(filters)
    total = await session.scalar(select(func.count()).select_from(AuditEvent).where(*clauses))
    query = select(AuditEvent).where(*clauses)
    if after is not None:
        query = query.where(AuditEvent.seq < decode_cursor(after))
    rows = list(
        (await session.scalars(query.order_by(AuditEvent.seq.desc()).limit(size + 1))).all()
    )
    return Page(rows[:size], int(total or 0), len(rows) > size, after is not None)


async def export_events(session: AsyncSession, since: datetime | None) -> AsyncIterator[AuditEvent]:
    """Every event since a moment, oldest first, streamed (the trail may be long)."""
    query = select(AuditEvent).order_by(AuditEvent.seq)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    async for event in await session.stream_scalars(query.execution_options(yield_per=1000)):
        yield event


async def get_event(session: AsyncSession, event_id: uuid.UUID) -> AuditEvent | None:
    return await session.get(AuditEvent, event_id)


def event_record(event: AuditEvent) -> dict[str, Any]:
    """An event as one JSON line of the export (ids as raw UUIDs, times in UTC)."""
    return {
        "id": str(event.id),
        "at": event.at.astimezone(UTC).isoformat(),
        "action": event.action,
        "actorId": str(event.actor_id) if event.actor_id else None,
        "callId": str(event.call_id) if event.call_id else None,
        "targetUserId": str(event.target_user_id) if event.target_user_id else None,
        "address": event.address,
        "detail": event.detail,
    }


# --- retention -----------------------------------------------------------------------------


async def sweep(
    session: AsyncSession, retention_days: int | None, *, now: datetime | None = None
) -> int:
    """Deletes the events older than the retention (None keeps them for ever); returns how
    many. The cut-off is handed to the table's trigger for this transaction only, and the
    trigger lets through nothing newer."""
    if retention_days is None:
        return 0
    if retention_days < 0:
        raise BadUserInput("AUDIT_RETENTION_DAYS must not be negative")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    await session.execute(
        text("SELECT set_config('ovozly.audit_retained_since', :cutoff, true)"),
        {"cutoff": cutoff.isoformat()},
    )
    result = await session.execute(delete(AuditEvent).where(AuditEvent.at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
