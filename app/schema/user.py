from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from app.auth.policy import may_see_voiceprint
from app.core.ids import to_global_id
from app.db.models import Role as RoleModel
from app.db.models import User as UserModel
from app.schema.context import Info
from app.schema.node import Node
from app.schema.rows import from_row

if TYPE_CHECKING:
    from app.schema.team import Team

Role = strawberry.enum(RoleModel, name="Role")


@strawberry.type(
    description="What the system learned of an agent's voice from their calls, to tell the "
    "agent on mono recordings."
)
class Voiceprint:
    enrolled: bool = strawberry.field(description="true once it is used to assign roles")
    calls: int = strawberry.field(description="calls it was learned from")
    updated_at: datetime | None


@strawberry.type(name="User")
class User(Node):
    username: str
    full_name: str | None
    role: Role  # type: ignore[valid-type]
    is_active: bool
    created_at: datetime
    _user: strawberry.Private[UserModel]

    # ADMIN, the user's supervisors and the user; null for anyone else. The voice
    # embeddings themselves are never shown.
    @strawberry.field
    async def voiceprint(self, info: Info) -> Voiceprint | None:
        viewer = await info.context.require_viewer()
        if not await may_see_voiceprint(info.context.session, viewer, self._user):
            return None
        stored = await info.context.loaders.voiceprints.load(self._user.id)
        if stored is None:
            return None
        return Voiceprint(
            enrolled=stored.enrolled, calls=stored.calls, updated_at=stored.updated_at
        )

    @classmethod
    def from_row(cls, user: UserModel) -> User:
        return from_row(cls, user, id=strawberry.ID(to_global_id("User", user.id)), _user=user)

    # The teams this user supervises or belongs to, as far as the viewer may see teams
    # (an ADMIN: all; anyone else: the teams they are in themselves).
    @strawberry.field
    async def teams(self, info: Info) -> list[Annotated[Team, strawberry.lazy("app.schema.team")]]:
        from app.schema.team import Team

        teams = await info.context.viewer_loaders.teams_of_user.load(self._user.id)
        return [Team.from_row(team) for team in teams]


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


__all__ = ["AuthPayload", "CreateUserInput", "Role", "UpdateUserInput", "User", "Voiceprint"]
