"""Teams: created, changed and deleted by admins; listed for their members.

A change to who supervises whom takes effect on the next request (the call scope is read
from these tables each time); after the commit the open sockets of every supervisor whose
scope may have changed are closed, so no running subscription keeps the old scope.
Services flush; the boundary commits.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.policy import visible_teams
from app.core.errors import BadUserInput, NotFound
from app.db.models import Role, Team, User, team_agents, team_supervisors
from app.services import audit
from app.services.effects import after_commit
from app.services.names import clean_name

MAX_TEAM_NAME_LENGTH = 100


@dataclass(frozen=True, slots=True)
class TeamSpec:
    """A team as an admin writes it: the whole membership, replacing the previous one."""

    name: str
    supervisor_ids: Sequence[uuid.UUID] = field(default_factory=tuple)
    agent_ids: Sequence[uuid.UUID] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Members:
    supervisor_ids: tuple[uuid.UUID, ...] = ()
    agent_ids: tuple[uuid.UUID, ...] = ()


def _a(role: Role) -> str:
    return f"{'an' if role.value[0] in 'AEIOU' else 'a'} {role.value}"


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


async def _check_members(
    session: AsyncSession, ids: Sequence[uuid.UUID], role: Role, field_name: str
) -> tuple[uuid.UUID, ...]:
    """The distinct ids, in the order given, each an active user of `role`."""
    distinct = tuple(dict.fromkeys(ids))
    if not distinct:
        return ()
    users = {
        user.id: user for user in await session.scalars(select(User).where(User.id.in_(distinct)))
    }
    for user_id in distinct:
        user = users.get(user_id)
        if user is None or not user.is_active:
            raise BadUserInput(f"{field_name}: no active user with id {user_id}", field=field_name)
        if user.role is not role:
            raise BadUserInput(
                f"{field_name}: '{user.username}' is not {_a(role)}", field=field_name
            )
    return distinct


async def _checked(session: AsyncSession, spec: TeamSpec) -> tuple[str, Members]:
    name = clean_name(spec.name, max_chars=MAX_TEAM_NAME_LENGTH, field="input.name")
    supervisors = await _check_members(
        session, spec.supervisor_ids, Role.SUPERVISOR, "input.supervisorIds"
    )
    agents = await _check_members(session, spec.agent_ids, Role.AGENT, "input.agentIds")
    return name, Members(supervisors, agents)


def _duplicate_name(name: str) -> BadUserInput:
    return BadUserInput(f"input.name: a team named '{name}' already exists", field="input.name")


async def _name_taken(session: AsyncSession, name: str, except_id: uuid.UUID | None) -> bool:
    query = select(Team.id).where(Team.name_key == _name_key(name))
    if except_id is not None:
        query = query.where(Team.id != except_id)
    return (await session.scalar(query)) is not None


async def _save_name(session: AsyncSession, team: Team, name: str) -> None:
    if await _name_taken(session, name, team.id):
        raise _duplicate_name(name)
    team.name = name
    team.name_key = _name_key(name)
    await _flush_name(session, name)


async def _flush_name(session: AsyncSession, name: str) -> None:
    try:
        # A savepoint: a concurrent duplicate leaves the outer transaction usable.
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise _duplicate_name(name) from exc


async def _replace_members(
    session: AsyncSession, table: Table, team_id: uuid.UUID, user_ids: Collection[uuid.UUID]
) -> None:
    await session.execute(delete(table).where(table.c.team_id == team_id))
    if user_ids:
        await session.execute(
            insert(table), [{"team_id": team_id, "user_id": user_id} for user_id in user_ids]
        )


async def members_of(
    session: AsyncSession, team_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Members]:
    """Each team's supervisors and agents (one query per table, whatever the count)."""
    supervisors: defaultdict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    agents: defaultdict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for table, found in ((team_supervisors, supervisors), (team_agents, agents)):
        rows = await session.execute(
            select(table.c.team_id, table.c.user_id)
            .join(User, User.id == table.c.user_id)
            .where(table.c.team_id.in_(team_ids))
            .order_by(table.c.team_id, User.username)
        )
        for team_id, user_id in rows:
            found[team_id].append(user_id)
    return {
        team_id: Members(tuple(supervisors[team_id]), tuple(agents[team_id]))
        for team_id in team_ids
    }


def _affected(before: Members, after: Members) -> set[uuid.UUID]:
    """Supervisors whose scope may differ: all of the team's, before and after, unless
    nothing about who sees whom changed."""
    if set(before.supervisor_ids) == set(after.supervisor_ids) and set(before.agent_ids) == set(
        after.agent_ids
    ):
        return set()
    return set(before.supervisor_ids) | set(after.supervisor_ids)


def _close_connections(session: AsyncSession, user_ids: Collection[uuid.UUID]) -> None:
    effects = after_commit(session)
    for user_id in sorted(user_ids):
        effects.close_connections(user_id)


def _detail(verb: str, name: str, members: Members | None) -> str:
    if members is None:
        return f"{verb} '{name}'"
    return (
        f"{verb} '{name}': supervisors {[str(i) for i in members.supervisor_ids]}, "
        f"agents {[str(i) for i in members.agent_ids]}"
    )


async def create_team(session: AsyncSession, actor: audit.Actor, spec: TeamSpec) -> Team:
    name, members = await _checked(session, spec)
    if await _name_taken(session, name, None):
        raise _duplicate_name(name)
    team = Team(id=uuid.uuid4(), name=name, name_key=_name_key(name))
    session.add(team)
    await _flush_name(session, name)
    await _replace_members(session, team_supervisors, team.id, members.supervisor_ids)
    await _replace_members(session, team_agents, team.id, members.agent_ids)
    audit.record_by(
        session, audit.AuditAction.TEAM_CHANGED, actor, detail=_detail("created", name, members)
    )
    _close_connections(session, _affected(Members(), members))
    await session.refresh(team)
    return team


async def _team_for_update(session: AsyncSession, team_id: uuid.UUID) -> Team:
    team = await session.scalar(select(Team).where(Team.id == team_id).with_for_update())
    if team is None:
        raise NotFound("Team")
    return team


async def update_team(
    session: AsyncSession, actor: audit.Actor, team_id: uuid.UUID, spec: TeamSpec
) -> Team:
    team = await _team_for_update(session, team_id)
    name, members = await _checked(session, spec)
    before = (await members_of(session, [team.id]))[team.id]
    await _save_name(session, team, name)
    await _replace_members(session, team_supervisors, team.id, members.supervisor_ids)
    await _replace_members(session, team_agents, team.id, members.agent_ids)
    audit.record_by(
        session, audit.AuditAction.TEAM_CHANGED, actor, detail=_detail("updated", name, members)
    )
    _close_connections(session, _affected(before, members))
    await session.flush()
    await session.refresh(team)
    return team


async def delete_team(session: AsyncSession, actor: audit.Actor, team_id: uuid.UUID) -> None:
    team = await _team_for_update(session, team_id)
    before = (await members_of(session, [team.id]))[team.id]
    await session.execute(delete(Team).where(Team.id == team.id))
    audit.record_by(
        session, audit.AuditAction.TEAM_CHANGED, actor, detail=_detail("deleted", team.name, None)
    )
    _close_connections(session, _affected(before, Members()))


async def list_teams(session: AsyncSession, viewer: User) -> Sequence[Team]:
    """ADMIN: every team; anyone else: the teams they supervise or belong to."""
    rows = await session.scalars(select(Team).where(visible_teams(viewer)).order_by(Team.name_key))
    return rows.all()


async def get_visible_team(session: AsyncSession, viewer: User, team_id: uuid.UUID) -> Team | None:
    return await session.scalar(select(Team).where(Team.id == team_id, visible_teams(viewer)))


async def teams_of_users(
    session: AsyncSession, viewer: User, user_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[Team]]:
    """The teams each user is in (as supervisor or agent) that the viewer may see."""
    found: defaultdict[uuid.UUID, dict[uuid.UUID, Team]] = defaultdict(dict)
    for table in (team_supervisors, team_agents):
        rows = await session.execute(
            select(table.c.user_id, Team)
            .join(Team, Team.id == table.c.team_id)
            .where(table.c.user_id.in_(user_ids), visible_teams(viewer))
        )
        for user_id, team in rows.tuples():
            found[user_id][team.id] = team
    return {
        user_id: sorted(found[user_id].values(), key=lambda team: team.name_key)
        for user_id in user_ids
    }


async def drop_memberships_of_role(session: AsyncSession, user: User, old_role: Role) -> None:
    """A user whose role changed leaves the team places of the old role (a team's
    supervisors are SUPERVISORs, its agents AGENTs); the supervisors who saw them as an
    agent have their sockets closed."""
    if old_role is user.role:
        return
    if old_role is Role.SUPERVISOR:
        await session.execute(delete(team_supervisors).where(team_supervisors.c.user_id == user.id))
    if old_role is Role.AGENT:
        affected = set(
            await session.scalars(
                select(team_supervisors.c.user_id)
                .join(team_agents, team_agents.c.team_id == team_supervisors.c.team_id)
                .where(team_agents.c.user_id == user.id)
            )
        )
        await session.execute(delete(team_agents).where(team_agents.c.user_id == user.id))
        _close_connections(session, affected)
