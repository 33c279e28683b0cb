"""Declared permissions for root fields (`permission_classes=[IsAdmin]`): who may call a field
is read off the schema, not off each resolver's first line."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from app.auth.policy import require_admin
from app.schema.context import Info


class IsAuthenticated(BasePermission):
    """A signed-in, active user; UNAUTHENTICATED otherwise."""

    message = "Authentication required"

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        await info.context.require_viewer()
        return True


class IsAdmin(BasePermission):
    """An administrator; UNAUTHENTICATED without a viewer, FORBIDDEN for any other role."""

    message = "Only an administrator may do this"

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        require_admin(await info.context.require_viewer())
        return True
