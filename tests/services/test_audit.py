"""The audit log's guarantees in the database: append-only (the trigger refuses UPDATE and
DELETE, even in SQL that bypasses the services), its own retention sweep deleting exactly
the events past AUDIT_RETENTION_DAYS, events written or lost with their transaction, the
supervisor relation other features ask about, and the auditors' export."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable

from app.auth.policy import supervises
from app.db.engine import SessionFactory
from app.db.models import AuditEvent, Role, Team, team_agents, team_supervisors
from app.services import audit
from tests.factories import make_user

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


async def _plant(sessions: SessionFactory, *ages_days: float) -> list[uuid.UUID]:
    """Events `ages_days` old (before NOW), as if written then."""
    ids = [uuid.uuid4() for _ in ages_days]
    async with sessions() as session, session.begin():
        for event_id, age in zip(ids, ages_days, strict=True):
            await session.execute(
                insert(AuditEvent).values(
                    id=event_id,
                    at=NOW - timedelta(days=age),
                    action=audit.AuditAction.CALL_VIEWED.value,
                    call_id=uuid.uuid4(),
                )
            )
    return ids


async def _ids(sessions: SessionFactory) -> set[uuid.UUID]:
    async with sessions() as session:
        return set((await session.scalars(select(AuditEvent.id))).all())


def _retained_since(moment: datetime) -> Executable:
    return text("SELECT set_config('ovozly.audit_retained_since', :at, true)").bindparams(
        at=moment.isoformat()
    )


async def _in_one_transaction(sessions: SessionFactory, *statements: Executable) -> None:
    async with sessions() as session, session.begin():
        for statement in statements:
            await session.execute(statement)


async def _in_two_transactions(
    sessions: SessionFactory, first: Executable, second: Executable
) -> None:
    """Two transactions on one connection: a setting local to the first is gone in the
    second."""
    async with sessions() as session:
        async with session.begin():
            await session.execute(first)
        async with session.begin():
            await session.execute(second)


async def _record_then_fail(sessions: SessionFactory, actor: audit.Actor) -> None:
    async with sessions() as session, session.begin():
        audit.record_by(session, audit.AuditAction.CALL_DELETED, actor, call_id=uuid.uuid4())
        await session.flush()
        raise RuntimeError("the change failed")


async def test_no_update_or_delete_gets_through(
    sessions: SessionFactory, clean_database: None
) -> None:
    planted = await _plant(sessions, 400, 1)
    statements = [
        update(AuditEvent).values(detail="rewritten"),
        update(AuditEvent).where(AuditEvent.id == planted[0]).values(actor_id=uuid.uuid4()),
        delete(AuditEvent),
        delete(AuditEvent).where(AuditEvent.id == planted[0]),
    ]
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            await _in_one_transaction(sessions, statement)
    # The sweep's cut-off lets through only rows older than itself, even to raw SQL...
    month_ago = _retained_since(NOW - timedelta(days=30))
    with pytest.raises(DBAPIError, match="append-only"):
        await _in_one_transaction(sessions, month_ago, delete(AuditEvent))
    # ...and only in its own transaction.
    with pytest.raises(DBAPIError, match="append-only"):
        await _in_two_transactions(sessions, _retained_since(NOW), delete(AuditEvent))
    assert await _ids(sessions) == set(planted)


async def test_the_sweep_deletes_exactly_the_events_past_the_retention(
    sessions: SessionFactory, clean_database: None
) -> None:
    old, edge_out, edge_in, recent = await _plant(sessions, 400, 30.01, 29.99, 0.5)
    async with sessions() as session, session.begin():
        assert await audit.sweep(session, None, now=NOW) == 0
    assert await _ids(sessions) == {old, edge_out, edge_in, recent}
    async with sessions() as session, session.begin():
        assert await audit.sweep(session, 30, now=NOW) == 2
    assert await _ids(sessions) == {edge_in, recent}
    # Run again: nothing more to do.
    async with sessions() as session, session.begin():
        assert await audit.sweep(session, 30, now=NOW) == 0
    async with sessions() as session, session.begin():
        assert await audit.sweep(session, 0, now=NOW) == 2
    assert await _ids(sessions) == set()


async def test_an_event_is_written_or_lost_with_its_transaction(
    sessions: SessionFactory, clean_database: None
) -> None:
    actor = audit.Actor(uuid.uuid4(), "10.0.0.7")
    with pytest.raises(RuntimeError):
        await _record_then_fail(sessions, actor)
    assert await _ids(sessions) == set()
    call_id = uuid.uuid4()
    await audit.record_committed(
        sessions, audit.AuditAction.CALL_VIEWED, actor, call_ids=[call_id, call_id]
    )
    async with sessions() as session:
        rows = (await session.scalars(select(AuditEvent))).all()
    assert [(r.action, r.actor_id, r.call_id, r.address) for r in rows] == [
        ("call.viewed", actor.user_id, call_id, "10.0.0.7"),
        ("call.viewed", actor.user_id, call_id, "10.0.0.7"),
    ]
    # Every action the other features record has its name.
    assert {a.value for a in audit.AuditAction} >= {
        "retention.changed",
        "call.legal_hold_changed",
        "voiceprint.deleted",
        "call.audio_expired",
    }


async def test_supervises_follows_the_teams(sessions: SessionFactory, clean_database: None) -> None:
    sup = await make_user(sessions, "sup", Role.SUPERVISOR)
    other = await make_user(sessions, "other_sup", Role.SUPERVISOR)
    agent = await make_user(sessions, "agent")
    async with sessions() as session, session.begin():
        team = Team(name="Day", name_key="day")
        session.add(team)
        await session.flush()
        await session.execute(insert(team_supervisors).values(team_id=team.id, user_id=sup.id))
        await session.execute(insert(team_agents).values(team_id=team.id, user_id=agent.id))
    async with sessions() as session:
        assert await supervises(session, sup.id, agent.id)
        assert not await supervises(session, other.id, agent.id)
        assert not await supervises(session, agent.id, sup.id)
