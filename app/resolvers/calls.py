"""Call resolvers: parse GraphQL arguments, call the calls service, return GraphQL types.

Writes run in the context's unit of work (`transaction()`): it commits at this boundary and
then runs the effects the service asked for (enqueue, publish, delete stored audio).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from functools import partial

import strawberry
from starlette.datastructures import UploadFile
from strawberry.file_uploads import Upload

from app.core.errors import BadUserInput
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
from app.services import status as status_service
from app.services.status import StatusEvent

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
        CallEdge(cursor=call_service.encode_cursor(c), node=Call.from_row(c)) for c in page.rows
    ]
    return CallConnection(
        edges=edges,
        page_info=PageInfo.of(page, [edge.cursor for edge in edges]),
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
    sessions = context.resources.sessions

    def present(state: StatusEvent, call: CallModel | None, live: bool) -> _StatusUpdate:
        return _StatusUpdate(state, sessions, call, live=live)

    updates = status_service.follow_call_status(
        context.resources.broadcaster, call_id, partial(context.visible_call, call_id), present
    )
    async with aclosing(updates):
        async for update in updates:
            # The event's own loaders: a connection's loaders would otherwise cache the
            # call's empty results from before SUCCESS.
            context.loaders = update.loaders
            yield update.event
