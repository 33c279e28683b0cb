"""Who may see and do what: the one place authorization rules live."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, true

from app.db.models import Call, Role, User
from app.errors import Forbidden


def require_admin(viewer: User) -> None:
    if viewer.role is not Role.ADMIN:
        raise Forbidden("Only an administrator may do this")


def visible_calls(viewer: User) -> ColumnElement[bool]:
    """SQL filter for the calls a viewer may see; agents see only their own."""
    if viewer.role is Role.ADMIN:
        return true()
    return Call.owner_id == viewer.id


def can_see_call(viewer: User, call: Call) -> bool:
    """`visible_calls` for a row already in memory (one read shared by many viewers)."""
    return viewer.role is Role.ADMIN or call.owner_id == viewer.id


def upload_owner(viewer: User, requested_owner_id: uuid.UUID | None) -> uuid.UUID:
    """An agent uploads for themselves; an admin may upload on an agent's behalf (the
    contract's `agentId`; inside, the user a call belongs to is its owner)."""
    if requested_owner_id is None or requested_owner_id == viewer.id:
        return viewer.id
    require_admin(viewer)
    return requested_owner_id


def may_see_voiceprint(viewer: User, user: User) -> bool:
    """Whether `viewer` may read what is stored of `user`'s voice (`User.voiceprint`): an
    administrator, and the user themselves. A team's supervisors are added to this rule
    together with teams; everyone else sees null."""
    return viewer.role is Role.ADMIN or viewer.id == user.id
