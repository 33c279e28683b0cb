from __future__ import annotations

import strawberry

from app.core.errors import NotFound
from app.core.ids import parse_global_id
from app.db.models import Role
from app.schema.call import Call
from app.schema.context import Info
from app.schema.node import Node
from app.schema.user import User


async def node(info: Info, id: strawberry.ID) -> Node | None:
    """Any object the viewer may see by its global ID; None when missing or not visible."""
    viewer = await info.context.require_viewer()
    type_name, object_id = parse_global_id(id)
    if type_name == "User":
        user = await info.context.loaders.user_by_id.load(object_id)
        # Agents see only themselves; the user list is an admin view.
        if user is None or (viewer.role is not Role.ADMIN and user.id != viewer.id):
            return None
        return User.from_model(user)
    if type_name == "Call":
        try:
            return Call.from_model(await info.context.visible_call(object_id))
        except NotFound:
            return None
    return None
