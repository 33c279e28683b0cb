from __future__ import annotations

import strawberry

from app.core.errors import NotFound
from app.core.ids import parse_global_id
from app.db.models import Role
from app.schema.audit import AuditEvent
from app.schema.call import Call
from app.schema.context import Info
from app.schema.node import Node
from app.schema.team import Team
from app.schema.user import User
from app.services import audit
from app.services import teams as team_service
from app.services import users as user_service


async def node(info: Info, id: strawberry.ID) -> Node | None:
    """Any object the viewer may see by its global ID; None when missing or not visible."""
    viewer = await info.context.require_viewer()
    type_name, object_id = parse_global_id(id)
    if type_name == "User":
        async with info.context.session() as session:
            user = await user_service.get_visible_user(session, viewer, object_id)
        return User.from_row(user) if user is not None else None
    if type_name == "Call":
        try:
            found = await info.context.visible_call(object_id)
        except NotFound:
            return None
        await info.context.calls_viewed.load(found.id)
        return Call.from_row(found)
    if type_name == "Team":
        async with info.context.session() as session:
            team = await team_service.get_visible_team(session, viewer, object_id)
        return Team.from_row(team) if team is not None else None
    if type_name == "AuditEvent":
        if viewer.role is not Role.ADMIN:
            return None
        async with info.context.session() as session:
            event = await audit.get_event(session, object_id)
        return AuditEvent.from_row(event) if event is not None else None
    return None
