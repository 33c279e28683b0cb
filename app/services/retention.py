"""How long recordings and transcripts are kept, legal holds, and the sweep that removes
what has expired.

The policy is one row: `audio_days` and `transcript_days` after a call finished (null keeps
for ever; 0 removes at the next sweep). A call on legal hold is never touched.

The sweep is safe to stop at any point and run again:

* audio, in three steps: *mark* (one transaction sets `audio_deleted_at`, so from then on
  no link is issued or served, and `audio_purge_pending`), *delete* both stored objects
  (deleting a missing object is not an error), *clear* `audio_purge_pending` and the copy's
  key. A sweep that died after marking finds the call still pending and deletes again;
* transcripts and analysis in one transaction (segments, words, analysis, intents,
  entities, issues, actions, key points, and the transcript quotes kept as category and
  scorecard evidence). The call row, its metrics, speakers, categories and scores stay, so
  statistics over old calls do not change.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import BadUserInput, NotFound
from app.db.engine import SessionFactory
from app.db.models import (
    Call,
    CallCategory,
    CallScorecard,
    CallStatus,
    RetentionPolicy,
)
from app.db.models.retention import POLICY_ROW_ID
from app.services import audit
from app.services.results import TRANSCRIPT_TABLES
from app.storage import ObjectStorage

logger = logging.getLogger(__name__)

SWEEP_BATCH = 500


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Policy:
    audio_days: int | None = None
    transcript_days: int | None = None


async def get_policy(session: AsyncSession) -> Policy:
    row = await session.get(RetentionPolicy, POLICY_ROW_ID)
    if row is None:
        return Policy()
    return Policy(row.audio_days, row.transcript_days)


async def set_policy(session: AsyncSession, actor: audit.Actor, policy: Policy) -> Policy:
    """Replaces the policy (both fields; null keeps for ever). Negative days are refused,
    naming the field."""
    for name, days in (
        ("audioDays", policy.audio_days),
        ("transcriptDays", policy.transcript_days),
    ):
        if days is not None and days < 0:
            raise BadUserInput(
                f"{name} must be 0 or more (0 removes at the next sweep; null keeps for ever)"
            )
    row = await session.get(RetentionPolicy, POLICY_ROW_ID, with_for_update=True)
    if row is None:
        row = RetentionPolicy(id=POLICY_ROW_ID)
        session.add(row)
    row.audio_days = policy.audio_days
    row.transcript_days = policy.transcript_days
    await session.flush()
    audit.record_by(
        session,
        audit.AuditAction.RETENTION_CHANGED,
        actor,
        detail=f"audioDays={policy.audio_days} transcriptDays={policy.transcript_days}",
    )
    return policy


async def set_legal_hold(
    session: AsyncSession, actor: audit.Actor, call_id: uuid.UUID, hold: bool
) -> Call:
    """Puts a call on legal hold (retention never touches it) or releases it."""
    call = await session.get(Call, call_id, with_for_update=True)
    if call is None:
        raise NotFound("Call")
    call.legal_hold = hold
    await session.flush()
    await session.refresh(call)
    audit.record_by(
        session,
        audit.AuditAction.CALL_LEGAL_HOLD_CHANGED,
        actor,
        call_id=call.id,
        detail=f"hold={str(hold).lower()}",
    )
    return call


# --- the sweep ---------------------------------------------------------------------------------


def _expired(days: int, now: datetime) -> list[ColumnElement[bool]]:
    return [
        Call.status != CallStatus.RUNNING,
        Call.finished_at.is_not(None),
        Call.finished_at <= now - timedelta(days=days),
        Call.legal_hold.is_(False),
    ]


async def mark_expired_audio(
    session: AsyncSession, policy: Policy, now: datetime
) -> list[uuid.UUID]:
    """Step 1: the calls whose audio has expired are marked (never served again)."""
    if policy.audio_days is None:
        return []
    candidates = (
        select(Call.id)
        .where(*_expired(policy.audio_days, now), Call.audio_deleted_at.is_(None))
        .order_by(Call.finished_at)
        .limit(SWEEP_BATCH)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.execute(candidates)).scalars())
    if not ids:
        return []
    await session.execute(
        update(Call).where(Call.id.in_(ids)).values(audio_deleted_at=now, audio_purge_pending=True)
    )
    for call_id in ids:
        audit.record_by(
            session, audit.AuditAction.CALL_AUDIO_EXPIRED, audit.SYSTEM, call_id=call_id
        )
    return ids


@dataclass(frozen=True, slots=True)
class PendingPurge:
    call_id: uuid.UUID
    storage_keys: tuple[str, ...]


async def pending_purges(session: AsyncSession) -> list[PendingPurge]:
    rows = await session.execute(
        select(Call.id, Call.storage_key, Call.redacted_storage_key)
        .where(Call.audio_purge_pending.is_(True))
        .limit(SWEEP_BATCH)
    )
    return [
        PendingPurge(call_id, tuple(dict.fromkeys(k for k in (original, copy) if k is not None)))
        for call_id, original, copy in rows
    ]


async def clear_purge(session: AsyncSession, call_id: uuid.UUID) -> None:
    """Step 3: both objects are gone. `storage_key` keeps naming the deleted original (the
    column is the call's identity in storage and never reused)."""
    await session.execute(
        update(Call)
        .where(Call.id == call_id)
        .values(audio_purge_pending=False, redacted_storage_key=None)
    )


async def expire_transcripts(
    session: AsyncSession, policy: Policy, now: datetime
) -> list[uuid.UUID]:
    """Deletes the transcripts and analyses that have expired, in this transaction."""
    if policy.transcript_days is None:
        return []
    candidates = (
        select(Call.id)
        .where(*_expired(policy.transcript_days, now), Call.transcript_deleted_at.is_(None))
        .limit(SWEEP_BATCH)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.execute(candidates)).scalars())
    if not ids:
        return []
    for table in TRANSCRIPT_TABLES:
        column = table.__table__.c.call_id
        await session.execute(delete(table).where(column.in_(ids)))
    # Category and scorecard results stay (they are counted); the quotes they keep as
    # evidence are transcript text and go with it.
    await session.execute(
        update(CallCategory).where(CallCategory.call_id.in_(ids)).values(evidence=[])
    )
    scorecards = (
        await session.execute(select(CallScorecard).where(CallScorecard.call_id.in_(ids)))
    ).scalars()
    for scorecard in scorecards:
        scorecard.items = [{**item, "evidence": []} for item in scorecard.items]
    await session.execute(update(Call).where(Call.id.in_(ids)).values(transcript_deleted_at=now))
    await session.flush()
    return ids


@dataclass(frozen=True, slots=True)
class SweepReport:
    audio_expired: int = 0
    audio_purged: int = 0
    transcripts_expired: int = 0


async def sweep(
    sessions: SessionFactory, storage: ObjectStorage, *, now: datetime | None = None
) -> SweepReport:
    """One retention sweep: mark, delete and clear expired audio; delete expired
    transcripts. Each step commits on its own, so a crash anywhere leaves a state the next
    sweep completes."""
    moment = now or _now()
    async with sessions() as session:
        policy = await get_policy(session)
    marked = 0
    while True:
        async with sessions() as session, session.begin():
            batch = await mark_expired_audio(session, policy, moment)
        marked += len(batch)
        if len(batch) < SWEEP_BATCH:
            break
    purged = 0
    while True:
        async with sessions() as session:
            pending = await pending_purges(session)
        if not pending:
            break
        for purge in pending:
            for key in purge.storage_keys:
                await storage.delete(key)
            async with sessions() as session, session.begin():
                await clear_purge(session, purge.call_id)
            purged += 1
        if len(pending) < SWEEP_BATCH:
            break
    transcripts = 0
    while True:
        async with sessions() as session, session.begin():
            expired = await expire_transcripts(session, policy, moment)
        transcripts += len(expired)
        if len(expired) < SWEEP_BATCH:
            break
    if marked or purged or transcripts:
        logger.info(
            "retention: %d recordings expired, %d purged from storage, %d transcripts expired",
            marked,
            purged,
            transcripts,
        )
    return SweepReport(marked, purged, transcripts)
