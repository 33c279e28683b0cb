"""GraphQL types of the audit trail (ADMIN only)."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from app.core.ids import to_global_id
from app.db.models import AuditEvent as AuditEventModel
from app.schema.call import PageInfo
from app.schema.context import Info
from app.schema.node import Node
from app.schema.rows import from_row
from app.schema.user import User


@strawberry.type(name="AuditEvent")
class AuditEvent(Node):
    at: datetime
    action: str
    call_id: strawberry.ID | None
    target_user_id: strawberry.ID | None
    detail: str | None
    address: str | None = strawberry.field(description="The client address of the request.")
    _actor_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, event: AuditEventModel) -> AuditEvent:
        return from_row(
            cls,
            event,
            id=strawberry.ID(to_global_id("AuditEvent", event.id)),
            call_id=strawberry.ID(to_global_id("Call", event.call_id)) if event.call_id else None,
            target_user_id=strawberry.ID(to_global_id("User", event.target_user_id))
            if event.target_user_id
            else None,
            _actor_id=event.actor_id,
        )

    # Null for the system (retention) or an unknown login name.
    @strawberry.field
    async def actor(self, info: Info) -> User | None:
        if self._actor_id is None:
            return None
        user = await info.context.loaders.user_by_id.load(self._actor_id)
        return User.from_row(user) if user is not None else None


@strawberry.type
class AuditEventEdge:
    cursor: str
    node: AuditEvent


@strawberry.type
class AuditEventConnection:
    edges: list[AuditEventEdge]
    page_info: PageInfo
    total_count: int


@strawberry.input(description="All fields are optional and combine with AND.")
class AuditFilter:
    actor_id: strawberry.ID | None = None
    call_id: strawberry.ID | None = None
    action: str | None = None
    after: datetime | None = strawberry.field(default=None, description="At or after.")
    before: datetime | None = strawberry.field(default=None, description="Strictly before.")
