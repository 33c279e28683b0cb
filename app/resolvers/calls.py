"""Call resolvers: translate GraphQL arguments to the calls service and back.

Writes commit at this boundary and enqueue jobs only after the commit, so a worker never
sees a call that is not in the database.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator
from typing import cast

import strawberry
from strawberry.file_uploads import Upload

from app.auth.policy import upload_owner
from app.db.models import Call as CallModel
from app.errors import NotFound
from app.ml.types import SpeakerHints
from app.queue import new_job_token
from app.schema.call import Call, CallConnection, CallEdge, CallFilter, CallStatusEvent, PageInfo
from app.schema.context import Info
from app.schema.ids import parse_typed_id, to_global_id
from app.schema.loaders import Loaders
from app.services import calls as call_service
from app.services.broadcast import MessagesLost
from app.services.status import StatusEvent, status_channel
from app.services.uploads import (
    AsyncReadable,
    received_audio,
    sanitize_filename,
)
from app.storage import new_object_key

logger = logging.getLogger(__name__)


async def load_visible_call(info: Info, call_id: uuid.UUID) -> CallModel:
    viewer = await info.context.require_viewer()
    async with info.context.session() as session:
        return await call_service.get_visible_call(session, viewer, call_id)


async def call(info: Info, id: strawberry.ID) -> Call:
    return Call.from_model(await load_visible_call(info, parse_typed_id(id, "Call")))


async def calls(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    filter: CallFilter | None = None,
) -> CallConnection:
    viewer = await info.context.require_viewer()
    filters = _filters(filter)
    async with info.context.session() as session:
        page = await call_service.list_calls(
            session, viewer, filters, call_service.PageRequest(first, after, last, before)
        )
    edges = [
        CallEdge(cursor=call_service.encode_cursor(c), node=Call.from_model(c)) for c in page.calls
    ]
    return CallConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=page.total_count,
    )


def _filters(filter_input: CallFilter | None) -> call_service.CallFilters:
    if filter_input is None:
        return call_service.CallFilters()
    return call_service.CallFilters(
        status=filter_input.status,
        owner_id=parse_typed_id(filter_input.agent_id, "User") if filter_input.agent_id else None,
        language=filter_input.language,
        sentiment=filter_input.sentiment,
        search=filter_input.search,
        created_after=filter_input.created_after,
        created_before=filter_input.created_before,
    )


def _hints(
    num_speakers: int | None, min_speakers: int | None, max_speakers: int | None
) -> SpeakerHints:
    return call_service.validate_hints(SpeakerHints(num_speakers, min_speakers, max_speakers))


async def upload_call(
    info: Info,
    file: Upload,
    agent_id: strawberry.ID | None = None,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
) -> Call:
    context = info.context
    settings = context.settings
    viewer = await context.require_viewer()
    requested_owner = parse_typed_id(agent_id, "User") if agent_id is not None else None
    owner_id = upload_owner(viewer, requested_owner)
    hints = _hints(num_speakers, min_speakers, max_speakers)
    if owner_id != viewer.id:
        async with context.session() as session:
            await call_service.require_upload_owner(session, owner_id)

    storage = context.resources.storage
    key = new_object_key()
    async with received_audio(
        cast(AsyncReadable, file),
        max_bytes=settings.max_upload_bytes,
        tmp_dir=settings.data_dir / "tmp",
    ) as (received, audio):
        await storage.put_file(key, received.path)
        new_call = call_service.NewCall(
            owner_id=owner_id,
            filename=sanitize_filename(getattr(file, "filename", None)),
            storage_key=key,
            sha256=received.sha256_hex,
            size_bytes=received.size_bytes,
            duration_s=audio.duration_s,
            channels=audio.channels,
            sample_rate=audio.sample_rate,
            codec=audio.codec,
            hints=hints,
            job_token=new_job_token(uuid.uuid4()),
        )
        try:
            async with context.transaction() as session:
                created = await call_service.create_call(session, new_call)
        except Exception:
            await storage.delete(key)
            raise
    await _enqueue(info, created)
    return Call.from_model(created)


async def _enqueue(info: Info, call_model: CallModel) -> None:
    """After commit. If Redis is down the call stays QUEUED and the worker's recovery sweep
    enqueues it later: the upload is not lost and the client is not told it failed."""
    assert call_model.job_id is not None
    try:
        await info.context.resources.queue.enqueue_process_call(call_model.id, call_model.job_id)
    except Exception:
        logger.exception("could not enqueue call %s; recovery will retry", call_model.id)


async def reprocess_call(
    info: Info,
    id: strawberry.ID,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
) -> Call:
    viewer = await info.context.require_viewer()
    call_id = parse_typed_id(id, "Call")
    given = any(v is not None for v in (num_speakers, min_speakers, max_speakers))
    hints = _hints(num_speakers, min_speakers, max_speakers) if given else None
    async with info.context.transaction() as session:
        call_model = await call_service.get_visible_call(session, viewer, call_id, for_update=True)
        restarted = await call_service.restart_call(
            session, call_model, new_job_token(call_model.id), hints
        )
    await _enqueue(info, restarted)
    await _publish(info, StatusEvent.of(restarted))
    return Call.from_model(restarted)


async def delete_call(info: Info, id: strawberry.ID) -> strawberry.ID:
    viewer = await info.context.require_viewer()
    call_id = parse_typed_id(id, "Call")
    async with info.context.transaction() as session:
        call_model = await call_service.get_visible_call(session, viewer, call_id, for_update=True)
        storage_key = await call_service.delete_call(session, call_model)
    await _publish(info, StatusEvent.of_deleted(call_model))
    try:
        await info.context.resources.storage.delete(storage_key)
    except Exception:
        # The row is gone; an orphaned object costs disk, not correctness.
        logger.exception("could not delete stored audio %s", storage_key)
    return id


async def _publish(info: Info, event: StatusEvent) -> None:
    """Best effort: subscribers also re-read the database when they reconnect."""
    try:
        await info.context.resources.publisher.publish(event)
    except Exception:
        logger.warning("could not publish status of call %s", event.call_id, exc_info=True)


def _event(state: StatusEvent, call_model: CallModel | None = None) -> CallStatusEvent:
    return CallStatusEvent(
        call_id=strawberry.ID(to_global_id("Call", state.call_id)),
        status=state.status,
        stage=state.stage,
        progress=state.progress,
        error=state.error,
        at=state.at,
        _call=call_model,
        _call_uuid=state.call_id,
    )


def _is_news(event: StatusEvent, last: StatusEvent) -> bool:
    """Drops duplicates (the state read at subscribe time may arrive again as a message)
    and progress that is older than what the subscriber has already seen."""
    if event.status != last.status:
        return True
    return (event.stage, event.progress, event.error) != (
        last.stage,
        last.progress,
        last.error,
    ) and (event.stage != last.stage or event.progress >= last.progress)


async def call_status(
    info: Info,
    id: strawberry.ID,
) -> AsyncGenerator[CallStatusEvent, None]:
    """First the current state, then every change, ending after SUCCESS or FAIL."""
    call_id = parse_typed_id(id, "Call")
    context = info.context
    # A WebSocket keeps one context for all its operations: check the token and the user
    # again for each subscription, and start with empty caches.
    context.forget_viewer()
    context.loaders = Loaders(context.resources.sessions)
    await context.require_viewer()
    # Subscribe before reading the state, so no change can fall in between.
    async with context.resources.broadcaster.subscribe(status_channel(call_id)) as messages:
        current = await load_visible_call(info, call_id)
        last = StatusEvent.of(current)
        yield _event(last, current)
        if last.is_final:
            return
        async for message in messages:
            if isinstance(message, MessagesLost):
                # Some events were dropped: the database has the current state.
                current = await load_visible_call(info, call_id)
                event = StatusEvent.of(current)
            else:
                event = StatusEvent.from_json(message)
            if event.deleted:
                raise NotFound("Call")
            if not _is_news(event, last):
                continue
            last = event
            # Fresh loaders per event: a connection's loaders would otherwise cache the
            # call's empty results from before SUCCESS.
            context.loaders = Loaders(context.resources.sessions)
            yield _event(event)
            if event.is_final:
                return
