"""What happens inside the transaction that ends a call (SUCCESS or FAIL), beside its own
results: categories and scorecards are evaluated, and webhook deliveries are recorded; their
sending is enqueued after the commit."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Call, CallStatus
from app.services import rules as rule_service
from app.services import webhooks as webhook_service
from app.services.effects import after_commit


async def on_call_finished(session: AsyncSession, call: Call) -> list[uuid.UUID]:
    """Returns the ids of the webhook deliveries recorded (sent after the commit)."""
    if call.status is CallStatus.SUCCESS:
        await rule_service.evaluate_calls(session, [call.id])
    deliveries = await webhook_service.record_call_event(session, call)
    effects = after_commit(session)
    for delivery_id in deliveries:
        effects.enqueue_webhook_delivery(delivery_id, 1)
    return deliveries
