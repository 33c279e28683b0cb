"""What happens inside the transaction that ends a call (SUCCESS or FAIL), beside its own
results: categories and scorecards are evaluated, and webhook deliveries are recorded; their
sending is enqueued after the commit.

Each runs in its own savepoint: the call's results are what the user is waiting for, so a
rule that cannot be evaluated (say, a rule an older version stored that no longer validates)
or a delivery that cannot be recorded is logged and rolled back alone, never failing the
call. The next rule evaluation run fills the call's categories in again."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Call, CallStatus
from app.services import rules as rule_service
from app.services import webhooks as webhook_service
from app.services.effects import after_commit

logger = logging.getLogger(__name__)


async def on_call_finished(session: AsyncSession, call: Call) -> list[uuid.UUID]:
    """Returns the ids of the webhook deliveries recorded (sent after the commit)."""
    call_id = call.id
    if call.status is CallStatus.SUCCESS:
        try:
            async with session.begin_nested():
                await rule_service.evaluate_calls(session, [call_id])
        except Exception:
            logger.exception(
                "categories and scorecards of call %s could not be evaluated; the call's "
                "results are kept without them",
                call_id,
            )
    deliveries: list[uuid.UUID] = []
    try:
        async with session.begin_nested():
            deliveries = await webhook_service.record_call_event(session, call)
    except Exception:
        logger.exception("webhook deliveries for call %s could not be recorded", call_id)
        return []
    effects = after_commit(session)
    for delivery_id in deliveries:
        effects.enqueue_webhook_delivery(delivery_id, 1)
    return deliveries
