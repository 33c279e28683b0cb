"""Call resolvers: parse GraphQL arguments, call the calls service, return GraphQL types.

Writes run in the context's unit of work (`transaction()`): it commits at this boundary and
then runs the effects the service asked for (enqueue, publish, delete stored audio).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator
from functools import partial

import strawberry
from starlette.datastructures import UploadFile
from strawberry.file_uploads import Upload

from app.core.errors import BadUserInput, NotFound
from app.core.ids import parse_typed_id, to_global_id
from app.db.engine import SessionFactory
from app.db.models import Call as CallModel
from app.ml.types import SpeakerHints
from app.schema.call import (
    Call,
    CallConnection,
    CallEdge,
    CallFilter,
    CallSnapshot,
    CallStatusEvent,
    PageInfo,
)
from app.schema.context import Info
from app.schema.dataloaders import DataLoaders
from app.schema.rows import from_row
from app.services import calls as call_service
from app.services.broadcast import FeedInterrupted, MessagesLost
from app.services.status import StatusEvent, status_channel

logger = logging.getLogger(__name__)


async def call(info: Info, id: strawberry.ID) -> Call:
    found = await info.context.visible_call(parse_typed_id(id, "Call"))
    # A call's detail read by a person: audited before the answer goes out.
    await info.context.calls_viewed.load(found.id)
    return Call.from_row(found)


async def calls(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    filter: CallFilter | None = None,
) -> CallConnection:
    viewer = await info.context.require_viewer()
    filters = filters_of(filter)
    async with info.context.session() as session:
        page = await call_service.list_calls(
            session, viewer, filters, call_service.PageRequest(first, after, last, before)
        )
    edges = [
        CallEdge(cursor=call_service.encode_cursor(c), node=Call.from_row(c)) for c in page.calls
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


def filters_of(filter_input: CallFilter | None) -> call_service.CallFilters:
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
        category_id=parse_typed_id(filter_input.category, "Category")
        if filter_input.category
        else None,
    )


async def upload_call(
    info: Info,
    file: Upload,
    agent_id: strawberry.ID | None = None,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
) -> Call:
    context = info.context
    viewer = await context.require_viewer()
    if not isinstance(file, UploadFile):
        raise BadUserInput(
            "`file` must be a file sent as a multipart upload (GraphQL multipart request "
            "spec), not a JSON value"
        )
    requested_owner = parse_typed_id(agent_id, "User") if agent_id is not None else None
    hints = SpeakerHints(num_speakers, min_speakers, max_speakers)
    async with context.session() as session:
        owner_id = await call_service.check_upload(session, viewer, requested_owner, hints)
    # The viewer's uploads in flight are limited (per API process); the slot covers the
    # receiving, the probing and the storing.
    async with (
        context.resources.probes.upload_slot(viewer.id),
        context.stored_upload(file) as upload,
        context.transaction() as session,
    ):
        created = await call_service.create_call(
            session, owner_id, upload, hints, actor=await context.actor()
        )
    return Call.from_row(created)


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
    hints = SpeakerHints(num_speakers, min_speakers, max_speakers) if given else None
    async with info.context.transaction() as session:
        restarted = await call_service.reprocess_call(
            session, viewer, call_id, hints, address=info.context.client_address
        )
    return Call.from_row(restarted)


async def delete_call(info: Info, id: strawberry.ID) -> strawberry.ID:
    viewer = await info.context.require_viewer()
    call_id = parse_typed_id(id, "Call")
    async with info.context.transaction() as session:
        await call_service.delete_call(
            session, viewer, call_id, address=info.context.client_address
        )
    return id


class _StatusUpdate:
    """One status change as a process's subscribers relay it: decoded once, with one GraphQL
    event (and so one call read and one execution per selection) and one set of DataLoaders
    shared by every subscriber."""

    def __init__(
        self,
        state: StatusEvent,
        sessions: SessionFactory,
        call_model: CallModel | None = None,
        *,
        live: bool = True,
    ) -> None:
        self.state = state
        self.loaders = DataLoaders(sessions)
        self.event = from_row(
            CallStatusEvent,
            state,
            call_id=strawberry.ID(to_global_id("Call", state.call_id)),
            _snapshot=CallSnapshot(partial(_read_call, sessions, state.call_id), call_model),
            shared_results={},
            live=live,
        )


async def _read_call(sessions: SessionFactory, call_id: uuid.UUID) -> CallModel | None:
    async with sessions() as session:
        return await call_service.get_call(session, call_id)


def _decode_update(message: bytes, sessions: SessionFactory) -> _StatusUpdate:
    return _StatusUpdate(StatusEvent.from_json(message), sessions)


def _hold_for_the_others(update: _StatusUpdate) -> None:
    """A subscriber that ends with the final event drops the shared update at once; when
    its selection needs no I/O it may do so before the other subscribers of the call have
    taken the same message, and each would then build, execute and encode the update again.
    Held until the loop's next round: the others were woken by the same message, so they
    run before it."""
    asyncio.get_running_loop().call_soon(_release, update)


def _release(update: _StatusUpdate) -> None:
    """Drops the reference `_hold_for_the_others` kept."""


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
    context.loaders = DataLoaders(context.resources.sessions)
    await context.require_viewer()
    resources = context.resources
    channel = status_channel(call_id)
    # Subscribe before reading the state, so no change can fall in between.
    async with resources.broadcaster.subscribe(channel) as messages:
        current = await context.visible_call(call_id)
        # Held until the next message: while any subscriber holds an update, the others
        # share it (see StatusBroadcaster.shared).
        update = _StatusUpdate(StatusEvent.of(current), resources.sessions, current)
        last = update.state
        # The job whose events are relayed: a late event of a superseded one is dropped.
        job = current.job_id
        yield update.event
        if last.is_final:
            return
        interrupted = False
        async for message in messages:
            if isinstance(message, FeedInterrupted):
                # Redis is gone: say so at once with the last state sent (the database may
                # be unreachable too), and keep the subscription open.
                interrupted = True
                context.loaders = DataLoaders(resources.sessions)
                yield _StatusUpdate(last, resources.sessions, live=False).event
                continue
            if isinstance(message, MessagesLost):
                # Some events were dropped: the database has the current state.
                current = await context.visible_call(call_id)
                job = current.job_id
                update = _StatusUpdate(StatusEvent.of(current), resources.sessions, current)
                if interrupted:
                    # The feed is back: said even when nothing changed meanwhile.
                    interrupted = False
                    last = update.state
                    context.loaders = update.loaders
                    yield update.event
                    if last.is_final:
                        return
                    continue
            else:
                update = resources.broadcaster.shared(
                    channel, message, partial(_decode_update, message, resources.sessions)
                )
            event = update.state
            if event.deleted:
                raise NotFound("Call")
            if event.job != job:
                if not event.new_job:
                    continue  # published late by a job that no longer holds the call
                # Re-queued: the database says which job holds the call now (two requeues
                # may be announced out of order).
                job = (await context.visible_call(call_id)).job_id
                if event.job != job:
                    continue
            if not _is_news(event, last):
                continue
            last = event
            # The event's own loaders: a connection's loaders would otherwise cache the
            # call's empty results from before SUCCESS.
            context.loaders = update.loaders
            yield update.event
            if event.is_final:
                _hold_for_the_others(update)
                return
