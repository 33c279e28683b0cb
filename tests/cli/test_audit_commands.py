"""`ovozly audit export` and `ovozly audit sweep` against the test database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli.main import in_transaction, main
from app.db.models import AuditEvent


def _plant(database_url: str, *ages_days: float) -> list[uuid.UUID]:
    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in ages_days]

    async def write(session: AsyncSession) -> None:
        for event_id, age in zip(ids, ages_days, strict=True):
            await session.execute(
                insert(AuditEvent).values(
                    id=event_id,
                    at=now - timedelta(days=age),
                    action="call.viewed",
                    actor_id=uuid.uuid4(),
                    call_id=uuid.uuid4(),
                    address="10.1.2.3",
                )
            )

    in_transaction(database_url, write)
    return ids


def _ids(database_url: str) -> set[uuid.UUID]:
    async def read(session: AsyncSession) -> set[uuid.UUID]:
        return set((await session.scalars(select(AuditEvent.id))).all())

    return in_transaction(database_url, read)


def test_export_writes_json_lines_since_a_moment_and_sweep_applies_the_retention(
    database_url: str,
    redis_url: str,
    clean_database: None,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    old, recent = _plant(database_url, 10, 1)

    since = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    assert main(["audit", "export", "--since", since]) == 0
    captured = capsysbinary.readouterr()
    lines = [json.loads(line) for line in captured.out.decode().splitlines()]
    assert [line["id"] for line in lines] == [str(recent)]
    assert lines[0]["action"] == "call.viewed"
    assert lines[0]["address"] == "10.1.2.3"
    assert set(lines[0]) == {
        "id",
        "at",
        "action",
        "actorId",
        "callId",
        "targetUserId",
        "address",
        "detail",
    }
    assert b"exported 1 audit event(s)" in captured.err
    assert main(["audit", "export"]) == 0
    everything = capsysbinary.readouterr().out.decode().splitlines()
    assert [json.loads(line)["id"] for line in everything] == [str(old), str(recent)]
    with pytest.raises(SystemExit):
        main(["audit", "export", "--since", "last tuesday"])

    # Unset retention keeps everything; 5 days deletes the 10-day-old event only.
    assert main(["audit", "sweep"]) == 0
    assert _ids(database_url) == {old, recent}
    monkeypatch.setenv("AUDIT_RETENTION_DAYS", "5")
    assert main(["audit", "sweep"]) == 0
    assert b"deleted 1 audit event(s)" in capsysbinary.readouterr().err
    assert _ids(database_url) == {recent}
