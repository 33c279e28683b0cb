"""Webhook endpoint and delivery resolvers: ADMIN only. Nothing here sends a request: the
worker sends deliveries."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

import strawberry

from app.core.errors import BadUserInput
from app.core.ids import parse_typed_id
from app.schema.context import Info
from app.schema.desk import (
    WebhookDelivery,
    WebhookDeliveryConnection,
    WebhookDeliveryEdge,
    WebhookEndpoint,
    WebhookEndpointInput,
    WebhookEndpointPayload,
)
from app.services import webhooks as webhook_service

MAX_PAGE = 100


async def webhook_endpoints(info: Info) -> list[WebhookEndpoint]:
    async with info.context.session() as session:
        rows = await webhook_service.list_endpoints(session)
    return [WebhookEndpoint.from_row(row) for row in rows]


async def create_webhook_endpoint(
    info: Info, input: WebhookEndpointInput
) -> WebhookEndpointPayload:
    data = webhook_service.EndpointInput(
        url=input.url, events=input.events, secret=input.secret, description=input.description
    )
    async with info.context.transaction() as session:
        endpoint, secret = await webhook_service.create_endpoint(
            session, data, allow_private=info.context.settings.webhooks_may_reach_private
        )
    return WebhookEndpointPayload(endpoint=WebhookEndpoint.from_row(endpoint), secret=secret)


async def delete_webhook_endpoint(info: Info, id: strawberry.ID) -> strawberry.ID:
    endpoint_id = parse_typed_id(id, "WebhookEndpoint")
    async with info.context.transaction() as session:
        await webhook_service.delete_endpoint(session, endpoint_id)
    return id


def _cursor(created_at: datetime, delivery_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(delivery_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, delivery_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(created_at), uuid.UUID(delivery_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadUserInput("Invalid pagination cursor") from exc


async def webhook_deliveries(
    info: Info,
    endpoint_id: strawberry.ID | None = None,
    call_id: strawberry.ID | None = None,
    first: int = 20,
    after: str | None = None,
) -> WebhookDeliveryConnection:
    if not 0 <= first <= MAX_PAGE:
        raise BadUserInput(f"first must be between 0 and {MAX_PAGE}")
    async with info.context.session() as session:
        page = await webhook_service.list_deliveries(
            session,
            endpoint_id=parse_typed_id(endpoint_id, "WebhookEndpoint") if endpoint_id else None,
            call_id=parse_typed_id(call_id, "Call") if call_id else None,
            first=first,
            after=_decode_cursor(after) if after else None,
        )
    edges = [
        WebhookDeliveryEdge(
            cursor=_cursor(d.created_at, d.id),
            node=WebhookDelivery.from_row(d, page.attempts.get(d.id, [])),
        )
        for d in page.deliveries
    ]
    return WebhookDeliveryConnection(
        edges=edges,
        has_next_page=page.has_next_page,
        end_cursor=edges[-1].cursor if edges else None,
    )
