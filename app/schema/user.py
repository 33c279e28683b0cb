from __future__ import annotations

from datetime import datetime

import strawberry

from app.core.ids import to_global_id
from app.db.models import Role as RoleModel
from app.db.models import User as UserModel
from app.schema.node import Node

Role = strawberry.enum(RoleModel, name="Role")


@strawberry.type(name="User")
class User(Node):
    username: str
    full_name: str | None
    role: Role  # type: ignore[valid-type]
    is_active: bool
    created_at: datetime

    @classmethod
    def from_model(cls, user: UserModel) -> User:
        return cls(
            id=strawberry.ID(to_global_id("User", user.id)),
            username=user.username,
            full_name=user.full_name,
            role=user.role,
            is_active=user.is_active,
            created_at=user.created_at,
        )


@strawberry.type
class AuthPayload:
    access_token: str
    token_type: str
    expires_in: int
    user: User


@strawberry.input
class CreateUserInput:
    username: str
    password: str
    full_name: str | None = None
    role: Role = RoleModel.AGENT  # type: ignore[valid-type]


@strawberry.input
class UpdateUserInput:
    """Fields left out (or null) stay as they are. Deactivating a user revokes their tokens."""

    full_name: str | None = None
    role: Role | None = None  # type: ignore[valid-type]
    is_active: bool | None = None


__all__ = ["AuthPayload", "CreateUserInput", "Role", "UpdateUserInput", "User"]
