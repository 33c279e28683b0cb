"""The retention sweep as a task beside the job slots: once at start-up, then every
RETENTION_SWEEP_S. Every worker runs it; the steps lock the rows they take (SKIP LOCKED)
and are idempotent, so two workers sweeping at once do each call once."""

from __future__ import annotations

import asyncio
import logging

from app.services import retention as retention_service
from app.workers.errors import TRANSIENT_INFRASTRUCTURE_ERRORS
from app.workers.jobs import WorkerState

logger = logging.getLogger(__name__)


async def sweep_once(state: WorkerState) -> retention_service.SweepReport | None:
    """None when the database or storage was unreachable or the sweep failed (logged; the
    next run finishes what this one started)."""
    try:
        return await retention_service.sweep(state.sessions, state.storage)
    except TRANSIENT_INFRASTRUCTURE_ERRORS:
        logger.warning("retention sweep: database or storage unreachable; will retry")
    except Exception:
        logger.exception("retention sweep failed; will retry")
    return None


async def retention_forever(state: WorkerState) -> None:
    while True:
        await sweep_once(state)
        await asyncio.sleep(state.settings.retention_sweep_s)
