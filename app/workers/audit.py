"""The audit log's own retention, applied by the worker once an hour."""

from __future__ import annotations

import logging
from typing import Any

from app.core.config import Settings
from app.services.audit import sweep
from app.workers.jobs import WorkerState

logger = logging.getLogger(__name__)


async def audit_sweep(ctx: dict[str, Any]) -> int:
    """Deletes the audit events older than AUDIT_RETENTION_DAYS (unset: none)."""
    settings: Settings = ctx["settings"]
    state: WorkerState = ctx["state"]
    async with state.sessions() as session, session.begin():
        deleted = await sweep(session, settings.audit_retention_days)
    if deleted:
        logger.info("audit retention: deleted %d event(s)", deleted)
    return deleted
