"""Who may see and do what: the one place authorization rules live.

Calls: an ADMIN sees every call; an AGENT their own; a SUPERVISOR exactly the calls of the
agents in the teams they supervise (an agent in several teams is seen by the supervisors of
each). Anything outside a viewer's scope is reported like a missing call. The rule is
evaluated by the database on every request (`visible_calls`), so role and team changes take
effect on the next request; `CallScope` is the same rule for rows already in memory.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, exists, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Forbidden
from app.db.models import Call, Role, Team, User, team_agents, team_supervisors


def require_admin(viewer: User) -> None:
    if viewer.role is not Role.ADMIN:
        raise Forbidden("Only an administrator may do this")


def supervised_agent_ids(supervisor_id: uuid.UUID) -> Select[uuid.UUID]:
    """The agents in the teams this user supervises, as a subquery."""
    return (
        select(team_agents.c.user_id)
        .join(team_supervisors, team_supervisors.c.team_id == team_agents.c.team_id)
        .where(team_supervisors.c.user_id == supervisor_id)
    )


def visible_calls(viewer: User) -> ColumnElement[bool]:
    """SQL filter for the calls a viewer may see (read, play, watch, count)."""
    if viewer.role is Role.ADMIN:
        return true()
    if viewer.role is Role.SUPERVISOR:
        return Call.owner_id.in_(supervised_agent_ids(viewer.id))
    return Call.owner_id == viewer.id


@dataclass(frozen=True, slots=True)
class CallScope:
    """`visible_calls` for rows already in memory (one read shared by many viewers): every
    call, or the calls of these owners."""

    everything: bool
    owner_ids: frozenset[uuid.UUID]

    def allows(self, call: Call) -> bool:
        return self.everything or call.owner_id in self.owner_ids


async def call_scope(session: AsyncSession, viewer: User) -> CallScope:
    if viewer.role is Role.ADMIN:
        return CallScope(everything=True, owner_ids=frozenset())
    if viewer.role is Role.SUPERVISOR:
        rows = await session.scalars(supervised_agent_ids(viewer.id))
        return CallScope(everything=False, owner_ids=frozenset(rows))
    return CallScope(everything=False, owner_ids=frozenset({viewer.id}))


async def supervises(session: AsyncSession, supervisor_id: uuid.UUID, agent_id: uuid.UUID) -> bool:
    """Whether this user is an active SUPERVISOR of a team the agent is in."""
    relation = (
        select(team_supervisors.c.user_id)
        .join(team_agents, team_agents.c.team_id == team_supervisors.c.team_id)
        .join(User, User.id == team_supervisors.c.user_id)
        .where(
            team_supervisors.c.user_id == supervisor_id,
            team_agents.c.user_id == agent_id,
            User.role == Role.SUPERVISOR,
            User.is_active.is_(True),
        )
    )
    return bool(await session.scalar(select(exists(relation))))


def require_call_changer(viewer: User, call: Call) -> None:
    """Reprocessing and deleting a call (already known visible) are for its owner and
    admins: a supervisor reviews their agents' calls and does not change them."""
    if viewer.role is not Role.ADMIN and call.owner_id != viewer.id:
        raise Forbidden("Only the call's agent or an administrator may change this call")


def upload_owner(viewer: User, requested_owner_id: uuid.UUID | None) -> uuid.UUID:
    """An agent uploads for themselves; an admin may upload on an agent's behalf (the
    contract's `agentId`; inside, the user a call belongs to is its owner). A supervisor
    sees only their agents' calls, so a call of their own would be invisible to them:
    they do not upload."""
    if viewer.role is Role.SUPERVISOR:
        raise Forbidden("A supervisor cannot upload calls; agents and administrators do")
    if requested_owner_id is None or requested_owner_id == viewer.id:
        return viewer.id
    require_admin(viewer)
    return requested_owner_id


def visible_teams(viewer: User) -> ColumnElement[bool]:
    """SQL filter for the teams a viewer may see: all for an ADMIN, else their own."""
    if viewer.role is Role.ADMIN:
        return true()
    return or_(
        Team.id.in_(
            select(team_supervisors.c.team_id).where(team_supervisors.c.user_id == viewer.id)
        ),
        Team.id.in_(select(team_agents.c.team_id).where(team_agents.c.user_id == viewer.id)),
    )


def visible_users(viewer: User) -> ColumnElement[bool]:
    """SQL filter for the users a viewer may look up by id: all for an ADMIN; oneself; for
    a SUPERVISOR also the agents they supervise."""
    if viewer.role is Role.ADMIN:
        return true()
    if viewer.role is Role.SUPERVISOR:
        return or_(User.id == viewer.id, User.id.in_(supervised_agent_ids(viewer.id)))
    return User.id == viewer.id


async def may_see_voiceprint(
    sessions: Callable[[], AbstractAsyncContextManager[AsyncSession]], viewer: User, user: User
) -> bool:
    """Whether `viewer` may read what is stored of `user`'s voice (`User.voiceprint`): an
    administrator, the user themselves, and the supervisors of a team the user is an agent
    in; everyone else sees null. Only a supervisor's question opens a session."""
    if viewer.role is Role.ADMIN or viewer.id == user.id:
        return True
    if viewer.role is not Role.SUPERVISOR:
        return False
    async with sessions() as session:
        return await supervises(session, viewer.id, user.id)
