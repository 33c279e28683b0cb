"""Waiting for something to happen, with a deadline: the poll loops of every test, a lock
another transaction is blocked on, and a real uvicorn that is listening."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from sqlalchemy import text

from app.db.engine import SessionFactory
from app.dev.embedded import free_tcp_port


async def wait_until(
    check: Callable[[], bool | Awaitable[bool]],
    what: str,
    timeout_s: float = 10.0,
    interval_s: float = 0.02,
) -> float:
    """Returns once `check()` (plain or awaitable) is true: the seconds it took. Fails the
    test after `timeout_s`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        outcome = check()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return loop.time() - started
        if loop.time() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(interval_s)


def wait_until_blocking(
    check: Callable[[], bool], what: str, timeout_s: float, interval_s: float = 0.2
) -> float:
    """`wait_until` for tests that drive other processes from a plain thread."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)
    return time.monotonic() - started


async def wait_until_a_query_waits_for_a_lock(
    sessions: SessionFactory, timeout_s: float = 10
) -> None:
    """Returns once another session of this database is blocked on a row or table lock (so a
    test knows the concurrent transaction it started has reached the lock it must wait for)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with sessions() as session:

        async def blocked() -> bool:
            return bool((await session.execute(query)).scalar_one())

        await wait_until(blocked, "a query to wait for a lock", timeout_s, interval_s=0.01)


@asynccontextmanager
async def serving(application: FastAPI) -> AsyncIterator[str]:
    """`application` on a real uvicorn (WebSockets included) until the block ends: yields its
    `host:port` once it listens."""
    port = free_tcp_port()
    server = uvicorn.Server(
        uvicorn.Config(
            application, host="127.0.0.1", port=port, ws="websockets-sansio", log_level="warning"
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started or task.done(), "uvicorn to listen", 30)
        if task.done():
            await task  # it failed to start: its error, not a timeout
            raise AssertionError("uvicorn exited before it listened")
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
