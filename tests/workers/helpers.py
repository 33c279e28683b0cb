"""Helpers of the worker tests: a burst-mode arq worker against the real Redis, and calls
created the way an upload leaves them."""

from __future__ import annotations

import uuid
from pathlib import Path

from app.api.resources import Resources
from app.core.config import Settings
from app.db.engine import SessionFactory
from app.db.models import Call, Role
from app.workers.main import create_worker
from app.workers.processor import CallProcessor
from tests.factories import make_call, make_user


async def run_worker_burst(settings: Settings, processor: CallProcessor) -> None:
    worker = create_worker(settings, burst=True, processor=processor)
    try:
        await worker.main()
    finally:
        await worker.close()


async def agent_id(sessions: SessionFactory, username: str = "agent1") -> uuid.UUID:
    return (await make_user(sessions, username, Role.AGENT)).id


async def create_stored_call(
    resources: Resources,
    owner_id: uuid.UUID,
    audio: Path,
    *,
    probe: bool = True,
    enqueue: bool = True,
) -> Call:
    """Stores `audio` and creates a queued call, as `uploadCall` leaves them (optionally
    without probing, to plant a file the upload would have rejected; without enqueueing, to
    stand for a lost enqueue)."""
    return await make_call(
        resources.sessions,
        resources.storage,
        owner_id,
        audio,
        probe=probe,
        queue=resources.queue if enqueue else None,
    )
