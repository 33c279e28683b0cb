"""The migrations build exactly the models, and undo cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from app.db.base import Base
from app.db.engine import create_engine
from app.db.migrations import downgrade_base, upgrade_head
from app.dev.embedded import EmbeddedServices


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _types(connection: Connection) -> set[str]:
    rows = connection.execute(text("SELECT typname FROM pg_type WHERE typtype = 'e'"))
    return {row[0] for row in rows}


T = TypeVar("T")


async def _run(url: str, fn: Callable[[Connection], T]) -> T:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(fn)
    finally:
        await engine.dispose()


async def test_upgrade_head_matches_models_and_downgrade_base_removes_everything(
    embedded_services: EmbeddedServices,
) -> None:
    postgres = embedded_services.postgres
    assert postgres is not None
    postgres.psql("DROP DATABASE IF EXISTS ovozly_migrations; CREATE DATABASE ovozly_migrations;")
    url = postgres.url_for("ovozly_migrations")

    await asyncio.to_thread(upgrade_head, url)
    assert await _run(url, _diff) == []
    tables = await _run(url, _tables)
    assert {"users", "calls", "segments", "call_analyses", "call_metrics"} <= tables

    await asyncio.to_thread(downgrade_base, url)
    assert await _run(url, _tables) == {"alembic_version"}
    assert await _run(url, _types) == set()

    await asyncio.to_thread(upgrade_head, url)
    assert await _run(url, _diff) == []
