"""Calls as the API sees them: creation, visibility, listing, reprocessing, deletion.

Services take the session first and flush; the resolver (request boundary) commits.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.policy import visible_calls
from app.db.models import Call, CallAnalysis, CallStatus, PipelineStage, Role, Segment, User
from app.errors import BadUserInput, NotFound
from app.ml.types import Sentiment, SpeakerHints

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_SPEAKERS = 32
MAX_SEARCH_CHARS = 200


@dataclass(frozen=True, slots=True)
class NewCall:
    owner_id: uuid.UUID
    filename: str
    storage_key: str
    sha256: str
    size_bytes: int
    duration_s: float
    channels: int
    sample_rate: int
    codec: str
    hints: SpeakerHints
    job_token: str


def validate_hints(hints: SpeakerHints) -> SpeakerHints:
    for value in (hints.num_speakers, hints.min_speakers, hints.max_speakers):
        if value is not None and not 1 <= value <= MAX_SPEAKERS:
            raise BadUserInput(f"Speaker counts must be between 1 and {MAX_SPEAKERS}")
    if (
        hints.min_speakers is not None
        and hints.max_speakers is not None
        and hints.min_speakers > hints.max_speakers
    ):
        raise BadUserInput("minSpeakers must not exceed maxSpeakers")
    if hints.num_speakers is not None and (
        (hints.min_speakers is not None and hints.num_speakers < hints.min_speakers)
        or (hints.max_speakers is not None and hints.num_speakers > hints.max_speakers)
    ):
        raise BadUserInput("numSpeakers must lie between minSpeakers and maxSpeakers")
    return hints


async def require_upload_owner(session: AsyncSession, user_id: uuid.UUID) -> User:
    """An admin uploads on behalf of an active AGENT, who then owns the call."""
    user = await session.get(User, user_id)
    if user is None or not user.is_active or user.role is not Role.AGENT:
        raise NotFound("Agent")
    return user


async def create_call(session: AsyncSession, new_call: NewCall) -> Call:
    call = Call(
        owner_id=new_call.owner_id,
        filename=new_call.filename,
        storage_key=new_call.storage_key,
        sha256=new_call.sha256,
        size_bytes=new_call.size_bytes,
        duration_s=new_call.duration_s,
        channels=new_call.channels,
        sample_rate=new_call.sample_rate,
        codec=new_call.codec,
        status=CallStatus.RUNNING,
        stage=PipelineStage.QUEUED,
        progress=0.0,
        job_id=new_call.job_token,
        attempts=0,
        num_speakers=new_call.hints.num_speakers,
        min_speakers=new_call.hints.min_speakers,
        max_speakers=new_call.hints.max_speakers,
    )
    session.add(call)
    await session.flush()
    await session.refresh(call)
    return call


async def get_visible_call(
    session: AsyncSession, viewer: User, call_id: uuid.UUID, *, for_update: bool = False
) -> Call:
    """Another agent's call is reported exactly like a missing one. `for_update` locks the
    row, so a write based on it cannot interleave with the worker's."""
    query = select(Call).where(Call.id == call_id, visible_calls(viewer))
    if for_update:
        query = query.with_for_update()
    result = await session.execute(query)
    call = result.scalar_one_or_none()
    if call is None:
        raise NotFound("Call")
    return call


async def restart_call(
    session: AsyncSession, call: Call, job_token: str, hints: SpeakerHints | None
) -> Call:
    """Puts a call back in the queue; its old results stay until the new run replaces them."""
    call.status = CallStatus.RUNNING
    call.stage = PipelineStage.QUEUED
    call.progress = 0.0
    call.error = None
    call.finished_at = None
    call.started_at = None
    call.attempts = 0
    call.job_id = job_token
    if hints is not None:
        call.num_speakers = hints.num_speakers
        call.min_speakers = hints.min_speakers
        call.max_speakers = hints.max_speakers
    await session.flush()
    await session.refresh(call)
    return call


async def delete_call(session: AsyncSession, call: Call) -> str:
    """Deletes the call and (by cascade) its results; returns the storage key to remove."""
    await session.execute(delete(Call).where(Call.id == call.id))
    return call.storage_key


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


@dataclass(frozen=True, slots=True)
class PageRequest:
    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None


@dataclass(frozen=True, slots=True)
class CallPage:
    calls: Sequence[Call]
    total_count: int
    has_next_page: bool
    has_previous_page: bool


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


def _filter_clauses(viewer: User, filters: CallFilters) -> list[ColumnElement[bool]]:
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
    by_results = (filters.language, filters.sentiment, (filters.search or "").strip())
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
) -> CallPage:
    """Newest first, keyset-paginated on (created_at, id)."""
    if page.first is not None and page.last is not None:
        raise BadUserInput("Pass either first or last, not both")
    clauses = _filter_clauses(viewer, filters)
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
        return CallPage(rows, total, page.before is not None, has_more)
    return CallPage(rows, total, has_more, page.after is not None)


def _older_than(created_at: datetime, call_id: uuid.UUID) -> ColumnElement[bool]:
    return or_(Call.created_at < created_at, and_(Call.created_at == created_at, Call.id < call_id))


def _newer_than(created_at: datetime, call_id: uuid.UUID) -> ColumnElement[bool]:
    return or_(Call.created_at > created_at, and_(Call.created_at == created_at, Call.id > call_id))
