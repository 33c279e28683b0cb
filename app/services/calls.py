"""A call's whole life, in one place: created from an upload, listed and read, reprocessed,
deleted; claimed by a job, its progress, its results, its failure, and its recovery when
its job vanished.

Services take the session first and flush; the boundary (a GraphQL mutation, a worker
job) commits through `unit_of_work`. What must happen after the commit (enqueue the job,
publish the status event, delete the stored audio) is asked of `after_commit(session)`
here and runs there, in one place.

Every write of the worker is guarded by the job token stored on the call (`calls.job_id`):
a job superseded by a reprocess or a recovery changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.policy import require_call_changer, upload_owner, visible_calls
from app.core.enums import Sentiment
from app.core.errors import BadUserInput, NotFound
from app.core.queue import new_job_token
from app.db.models import (
    Call,
    CallAnalysis,
    CallCategory,
    CallStatus,
    PipelineStage,
    Role,
    Segment,
    User,
)
from app.ml.types import CallInsight, SpeakerHints, Transcript
from app.services import audit
from app.services.call_finished import on_call_finished
from app.services.effects import after_commit
from app.services.pages import Page
from app.services.redacted_audio import StoredRedaction, apply_redaction
from app.services.results import replace_results, result_rows
from app.services.status import StatusEvent
from app.services.uploads import StoredUpload

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_SEARCH_CHARS = 200


def _now() -> datetime:
    return datetime.now(UTC)


def _queue(session: AsyncSession, call: Call) -> None:
    """After commit: the job runs, and subscribers see the call queued."""
    assert call.job_id is not None
    effects = after_commit(session)
    effects.enqueue_job(call.id, call.job_id, call.duration_s)
    effects.publish_status(StatusEvent.of_new_job(call))


def _published(session: AsyncSession, call: Call | None) -> Call | None:
    if call is not None:
        after_commit(session).publish_status(StatusEvent.of(call))
    return call


# --- the API's side: create, read, reprocess, delete ----------------------------------------


async def check_upload(
    session: AsyncSession,
    viewer: User,
    requested_owner_id: uuid.UUID | None,
    hints: SpeakerHints,
) -> uuid.UUID:
    """Before any byte is received: who will own the call, and whether the hints can be
    honoured. An admin uploads on behalf of an active AGENT."""
    hints.validated()
    owner_id = upload_owner(viewer, requested_owner_id)
    if owner_id != viewer.id:
        owner = await session.get(User, owner_id)
        if owner is None or not owner.is_active or owner.role is not Role.AGENT:
            raise NotFound("Agent")
    return owner_id


def new_call(owner_id: uuid.UUID, upload: StoredUpload, hints: SpeakerHints) -> Call:
    """The row of a call just uploaded: RUNNING/QUEUED under a fresh job token."""
    call_id = uuid.uuid4()
    return Call(
        id=call_id,
        owner_id=owner_id,
        filename=upload.filename,
        storage_key=upload.storage_key,
        sha256=upload.sha256_hex,
        size_bytes=upload.size_bytes,
        duration_s=upload.audio.duration_s,
        channels=upload.audio.channels,
        sample_rate=upload.audio.sample_rate,
        codec=upload.audio.codec,
        status=CallStatus.RUNNING,
        stage=PipelineStage.QUEUED,
        progress=0.0,
        job_id=new_job_token(call_id),
        attempts=0,
        num_speakers=hints.num_speakers,
        min_speakers=hints.min_speakers,
        max_speakers=hints.max_speakers,
    )


async def create_call(
    session: AsyncSession,
    owner_id: uuid.UUID,
    upload: StoredUpload,
    hints: SpeakerHints,
    *,
    actor: audit.Actor = audit.SYSTEM,
) -> Call:
    """A call for a stored upload, RUNNING/QUEUED; its job is enqueued after the commit."""
    call = new_call(owner_id, upload, hints)
    session.add(call)
    await session.flush()
    audit.record_by(
        session,
        audit.AuditAction.CALL_UPLOADED,
        actor,
        call_id=call.id,
        target_user_id=owner_id,
        detail=f"'{call.filename}'",
    )
    await session.refresh(call)
    assert call.job_id is not None
    after_commit(session).enqueue_job(call.id, call.job_id, call.duration_s)
    return call


async def get_visible_call(
    session: AsyncSession, viewer: User, call_id: uuid.UUID, *, for_update: bool = False
) -> Call:
    """The one way to load a call for a viewer: another agent's call is reported exactly
    like a missing one. `for_update` locks the row, so a write based on it cannot
    interleave with the worker's."""
    query = select(Call).where(Call.id == call_id, visible_calls(viewer))
    if for_update:
        query = query.with_for_update()
    call = (await session.execute(query)).scalar_one_or_none()
    if call is None:
        raise NotFound("Call")
    return call


async def get_call(session: AsyncSession, call_id: uuid.UUID) -> Call | None:
    """The call whatever the viewer: for a read shared by many viewers, each of whom is then
    checked with `policy.CallScope`."""
    return await session.get(Call, call_id)


async def reprocess_call(
    session: AsyncSession,
    viewer: User,
    call_id: uuid.UUID,
    hints: SpeakerHints | None,
    *,
    address: str | None = None,
) -> Call:
    """Puts a call back in the queue under a new job token (the running job, if any, stops
    at its next step); its old results stay until the new run replaces them. `hints=None`
    keeps the call's own."""
    if hints is not None:
        hints.validated()
    call = await get_visible_call(session, viewer, call_id, for_update=True)
    require_call_changer(viewer, call)
    if call.audio_deleted_at is not None:
        raise BadUserInput(
            "This call cannot be reprocessed: its recording was deleted by the retention "
            f"policy on {call.audio_deleted_at:%Y-%m-%d}"
        )
    call.status = CallStatus.RUNNING
    call.stage = PipelineStage.QUEUED
    call.progress = 0.0
    call.error = None
    call.finished_at = None
    call.started_at = None
    call.attempts = 0
    call.job_id = new_job_token(call.id)
    if hints is not None:
        call.num_speakers = hints.num_speakers
        call.min_speakers = hints.min_speakers
        call.max_speakers = hints.max_speakers
    await session.flush()
    await session.refresh(call)
    audit.record_by(
        session,
        audit.AuditAction.CALL_REPROCESSED,
        audit.Actor(viewer.id, address),
        call_id=call.id,
        target_user_id=call.owner_id,
    )
    _queue(session, call)
    return call


async def delete_call(
    session: AsyncSession, viewer: User, call_id: uuid.UUID, *, address: str | None = None
) -> None:
    """Deletes the call and (by cascade) its results; after the commit subscribers are told
    and the stored audio is removed."""
    call = await get_visible_call(session, viewer, call_id, for_update=True)
    require_call_changer(viewer, call)
    await session.execute(delete(Call).where(Call.id == call.id))
    audit.record_by(
        session,
        audit.AuditAction.CALL_DELETED,
        audit.Actor(viewer.id, address),
        call_id=call.id,
        target_user_id=call.owner_id,
        detail=f"'{call.filename}'",
    )
    effects = after_commit(session)
    effects.publish_status(StatusEvent.of_deleted(call))
    effects.delete_audio(call.storage_key)
    copy = call.redacted_storage_key
    if copy is not None and copy != call.storage_key:
        effects.delete_audio(copy)


# --- the worker's side: claim, progress, results, failure -----------------------------------


async def _locked_for_job(session: AsyncSession, call_id: uuid.UUID, job_token: str) -> Call | None:
    """The call locked, when this job still holds it; None when it is gone, finished or
    superseded."""
    call = (
        await session.execute(select(Call).where(Call.id == call_id).with_for_update())
    ).scalar_one_or_none()
    if call is None or call.job_id != job_token or call.status is not CallStatus.RUNNING:
        return None
    return call


async def claim(session: AsyncSession, call_id: uuid.UUID, job_token: str) -> Call | None:
    """Marks the call started by this job; None when the job has nothing to do."""
    call = await _locked_for_job(session, call_id, job_token)
    if call is None:
        return None
    call.attempts += 1
    call.started_at = _now()
    call.stage = PipelineStage.DECODING
    call.progress = 0.0
    await session.flush()
    await session.refresh(call)
    return _published(session, call)


async def is_current_job(session: AsyncSession, call_id: uuid.UUID, job_token: str) -> bool:
    """Whether this job still owns the call (not deleted, reprocessed or finished)."""
    row = (
        await session.execute(select(Call.job_id, Call.status).where(Call.id == call_id))
    ).one_or_none()
    return row is not None and row.job_id == job_token and row.status is CallStatus.RUNNING


async def record_progress(
    session: AsyncSession,
    call_id: uuid.UUID,
    job_token: str,
    stage: PipelineStage,
    progress: float,
) -> Call | None:
    """None when the job no longer holds the call (deleted or reprocessed meanwhile)."""
    result = await session.execute(
        update(Call)
        .where(Call.id == call_id, Call.job_id == job_token, Call.status == CallStatus.RUNNING)
        .values(stage=stage, progress=min(max(progress, 0.0), 1.0), updated_at=_now())
        .returning(Call)
    )
    return _published(session, result.scalar_one_or_none())


async def save_results(
    session: AsyncSession,
    call_id: uuid.UUID,
    job_token: str,
    transcript: Transcript,
    insight: CallInsight,
    *,
    analysis_backend: str,
    redaction: StoredRedaction | None = None,
    keep_original_audio: bool = True,
) -> Call | None:
    """Replaces any earlier results with these and marks the call SUCCESS, atomically;
    with `redaction`, the call's redacted copy and its spans too (the copy it replaces is
    deleted after the commit)."""
    call = await _locked_for_job(session, call_id, job_token)
    if call is None:
        return None
    rows = result_rows(call_id, transcript, insight, analysis_backend=analysis_backend)
    await replace_results(session, call_id, rows)
    # Results of the call as a whole, replaced with the rest.
    call.languages = [dataclasses.asdict(share) for share in transcript.languages]
    call.warnings = [dataclasses.asdict(warning) for warning in insight.warnings]
    apply_redaction(session, call, redaction, keep_original=keep_original_audio)
    call.transcript_deleted_at = None
    call.status = CallStatus.SUCCESS
    call.stage = PipelineStage.DONE
    call.progress = 1.0
    call.error = None
    call.finished_at = _now()
    if transcript.duration_s and not call.duration_s:
        call.duration_s = transcript.duration_s
    await session.flush()
    await session.refresh(call)
    await on_call_finished(session, call)
    return _published(session, call)


async def fail(
    session: AsyncSession, call_id: uuid.UUID, job_token: str | None, message: str
) -> Call | None:
    """Ends the call FAIL; `job_token=None` fails it whatever job holds it (recovery)."""
    conditions = [Call.id == call_id, Call.status == CallStatus.RUNNING]
    if job_token is not None:
        conditions.append(Call.job_id == job_token)
    result = await session.execute(
        update(Call)
        .where(*conditions)
        .values(status=CallStatus.FAIL, error=message, finished_at=_now(), updated_at=_now())
        .returning(Call)
    )
    failed = result.scalar_one_or_none()
    if failed is not None:
        await on_call_finished(session, failed)
    return _published(session, failed)


# --- recovery --------------------------------------------------------------------------------


async def running_calls_idle_since(session: AsyncSession, idle_for: timedelta) -> Sequence[Call]:
    """RUNNING calls not updated for `idle_for`: candidates for recovery."""
    cutoff = _now() - idle_for
    result = await session.execute(
        select(Call)
        .where(Call.status == CallStatus.RUNNING, Call.updated_at < cutoff)
        .order_by(Call.created_at)
        .limit(500)
    )
    return result.scalars().all()


async def recover(session: AsyncSession, candidate: Call, *, max_tries: int) -> Call | None:
    """A RUNNING call whose job is gone (lost enqueue, dead worker): re-queued under a new
    job token, or FAIL once its jobs have started `max_tries` times. Re-checked under a
    lock: None (nothing done) when the call changed since `candidate` was read, e.g. a job
    claimed it meanwhile (claiming touches it)."""
    call = await session.get(Call, candidate.id, with_for_update=True, populate_existing=True)
    if (
        call is None
        or call.job_id != candidate.job_id
        or call.status is not CallStatus.RUNNING
        or call.updated_at != candidate.updated_at
    ):
        return None
    if call.attempts >= max_tries:
        return await fail(
            session,
            call.id,
            None,
            f"The worker processing this call stopped {call.attempts} times; giving up. "
            "Check the worker logs (out of memory?) and reprocess the call.",
        )
    call.job_id = new_job_token(call.id)
    call.stage = PipelineStage.QUEUED
    call.progress = 0.0
    await session.flush()
    await session.refresh(call)
    _queue(session, call)
    return call


# --- listing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallFilters:
    status: CallStatus | None = None
    owner_id: uuid.UUID | None = None
    language: str | None = None
    sentiment: Sentiment | None = None
    search: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    category_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class PageRequest:
    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None


def encode_cursor(call: Call) -> str:
    raw = json.dumps([call.created_at.isoformat(), str(call.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, call_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(created_at), uuid.UUID(call_id)
    except (ValueError, TypeError, AttributeError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadUserInput("Invalid pagination cursor") from exc


def filter_clauses(viewer: User, filters: CallFilters) -> list[ColumnElement[bool]]:
    if any("\x00" in value for value in (filters.search, filters.language) if value):
        raise BadUserInput("Filters must not contain NUL characters")
    clauses: list[ColumnElement[bool]] = [visible_calls(viewer)]
    if filters.status is not None:
        clauses.append(Call.status == filters.status)
    if filters.owner_id is not None:
        clauses.append(Call.owner_id == filters.owner_id)
    if filters.created_after is not None:
        clauses.append(Call.created_at >= filters.created_after)
    if filters.created_before is not None:
        clauses.append(Call.created_at < filters.created_before)
    by_results = (
        filters.language,
        filters.sentiment,
        (filters.search or "").strip(),
        filters.category_id,
    )
    if any(by_results):
        # A reprocessed call keeps its old results until the new run replaces them; only
        # finished calls are matched on what their results say.
        clauses.append(Call.status == CallStatus.SUCCESS)
    if filters.language is not None or filters.sentiment is not None:
        analysis = [CallAnalysis.call_id == Call.id]
        if filters.language is not None:
            analysis.append(CallAnalysis.language == filters.language.strip().lower())
        if filters.sentiment is not None:
            analysis.append(CallAnalysis.sentiment == filters.sentiment)
        clauses.append(exists().where(*analysis))
    if filters.category_id is not None:
        clauses.append(
            exists().where(
                CallCategory.call_id == Call.id, CallCategory.category_id == filters.category_id
            )
        )
    if filters.search is not None and filters.search.strip():
        query = filters.search.strip()
        if len(query) > MAX_SEARCH_CHARS:
            raise BadUserInput(f"search must be at most {MAX_SEARCH_CHARS} characters")
        ts_query = func.websearch_to_tsquery("simple", query)
        clauses.append(
            exists().where(Segment.call_id == Call.id, Segment.text_search.op("@@")(ts_query))
        )
    return clauses


def _page_size(requested: int | None, name: str) -> int:
    if requested is None:
        return DEFAULT_PAGE_SIZE
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise BadUserInput(f"{name} must be between 0 and {MAX_PAGE_SIZE}")
    return requested


async def list_calls(
    session: AsyncSession, viewer: User, filters: CallFilters, page: PageRequest
) -> Page[Call]:
    """Newest first, keyset-paginated on (created_at, id)."""
    if page.first is not None and page.last is not None:
        raise BadUserInput("Pass either first or last, not both")
    clauses = filter_clauses(viewer, filters)
    total = (
        await session.execute(select(func.count()).select_from(Call).where(*clauses))
    ).scalar_one()

    backwards = page.last is not None or (page.before is not None and page.first is None)
    size = _page_size(page.last if backwards else page.first, "last" if backwards else "first")
    query = select(Call).where(*clauses)
    if page.after is not None:
        created_at, call_id = decode_cursor(page.after)
        query = query.where(_older_than(created_at, call_id))
    if page.before is not None:
        created_at, call_id = decode_cursor(page.before)
        query = query.where(_newer_than(created_at, call_id))
    if backwards:
        query = query.order_by(Call.created_at.asc(), Call.id.asc())
    else:
        query = query.order_by(Call.created_at.desc(), Call.id.desc())
    rows = list((await session.execute(query.limit(size + 1))).scalars())
    has_more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
        return Page(rows, total, page.before is not None, has_more)
    return Page(rows, total, has_more, page.after is not None)


def _older_than(created_at: datetime, call_id: uuid.UUID) -> ColumnElement[bool]:
    return or_(Call.created_at < created_at, and_(Call.created_at == created_at, Call.id < call_id))


def _newer_than(created_at: datetime, call_id: uuid.UUID) -> ColumnElement[bool]:
    return or_(Call.created_at > created_at, and_(Call.created_at == created_at, Call.id > call_id))
