"""Declared permissions for root fields (`permission_classes=[IsAdmin]`): who may call a field
is read off the schema, not off each resolver's first line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
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


def admin_field(resolver: Callable[..., Any], note: str | None = None) -> Any:
    """A root query field only an administrator may call, its description saying so (with
    `note` after it)."""
    return strawberry.field(
        resolver=resolver, permission_classes=[IsAdmin], description=_admin_only(note)
    )


def admin_mutation(resolver: Callable[..., Any], note: str | None = None) -> Any:
    """A mutation only an administrator may call, described like `admin_field`."""
    return strawberry.mutation(
        resolver=resolver, permission_classes=[IsAdmin], description=_admin_only(note)
    )


def _admin_only(note: str | None) -> str:
    return "ADMIN only" if note is None else f"ADMIN only; {note}"
