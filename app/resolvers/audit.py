"""auditEvents: the audit trail for admins, newest first."""

from __future__ import annotations

from app.core.ids import parse_typed_id
from app.schema.audit import AuditEvent, AuditEventConnection, AuditEventEdge, AuditFilter
from app.schema.call import PageInfo
from app.schema.context import Info
from app.services import audit


def _filters(filter_input: AuditFilter | None) -> audit.AuditFilters:
    if filter_input is None:
        return audit.AuditFilters()
    return audit.AuditFilters(
        actor_id=parse_typed_id(filter_input.actor_id, "User") if filter_input.actor_id else None,
        call_id=parse_typed_id(filter_input.call_id, "Call") if filter_input.call_id else None,
        action=filter_input.action,
        after=filter_input.after,
        before=filter_input.before,
    )


async def audit_events(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    filter: AuditFilter | None = None,
) -> AuditEventConnection:
    filters = _filters(filter)
    async with info.context.session() as session:
        page = await audit.list_events(session, filters, first=first, after=after)
    edges = [
        AuditEventEdge(cursor=audit.encode_cursor(event), node=AuditEvent.from_row(event))
        for event in page.rows
    ]
    return AuditEventConnection(
        edges=edges,
        page_info=PageInfo.of(page, [edge.cursor for edge in edges]),
        total_count=page.total_count,
    )
