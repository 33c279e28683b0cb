"""Worker jobs of the supervisor's desk: re-evaluating categories and scorecards after a rule
change, and sending webhook deliveries with bounded, backed-off retries."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx

from app.db.models import DeliveryStatus
from app.services import rules as rule_service
from app.services import webhooks as webhook_service
from app.workers.jobs import WorkerState

logger = logging.getLogger(__name__)

WEBHOOK_CLIENT = "webhook_client"


def webhook_client(timeout_s: float) -> httpx.AsyncClient:
    # No proxies from the environment and no redirects: the address we checked is the
    # address we call.
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=5),
    )


async def evaluate_rules(ctx: dict[str, Any], run_id: str) -> str:
    state: WorkerState = ctx["state"]
    run_uuid = uuid.UUID(run_id)
    after: uuid.UUID | None = None
    try:
        while True:
            async with state.unit_of_work() as session:
                batch = await rule_service.evaluate_batch(session, run_uuid, after)
            if batch.run is None:
                return "stopped: superseded or gone"
            if batch.last_call_id is None:
                return f"evaluated {batch.run.processed} calls"
            after = batch.last_call_id
    except Exception as exc:
        logger.exception("rule evaluation %s failed", run_id)
        async with state.unit_of_work() as session:
            await rule_service.fail_evaluation(
                session, run_uuid, f"Re-evaluation failed: {type(exc).__name__}"
            )
        return "failed"


async def deliver_webhook(ctx: dict[str, Any], delivery_id: str) -> str:
    """One attempt; schedules the next one itself (a fresh job, deferred) when it should be
    retried, so a failing receiver costs one bounded request per backoff step."""
    state: WorkerState = ctx["state"]
    settings = state.settings
    delivery_uuid = uuid.UUID(delivery_id)
    async with state.unit_of_work() as session:
        locked = await webhook_service.lock_pending(session, delivery_uuid)
    if locked is None:
        return "skipped: delivered, failed or gone"
    delivery, endpoint = locked
    client: httpx.AsyncClient | None = ctx.get(WEBHOOK_CLIENT)
    if client is None:
        client = ctx[WEBHOOK_CLIENT] = webhook_client(settings.webhook_timeout_s)
    outcome = await webhook_service.send(
        client, delivery, endpoint, allow_private=settings.webhooks_may_reach_private
    )
    async with state.unit_of_work() as session:
        recorded = await webhook_service.record_attempt(
            session,
            delivery_uuid,
            outcome,
            max_attempts=settings.webhook_max_attempts,
            backoff_base_s=settings.webhook_backoff_base_s,
            backoff_max_s=settings.webhook_backoff_max_s,
        )
    if recorded is None:
        return "skipped: finished meanwhile"
    if recorded.status is DeliveryStatus.PENDING:
        return f"attempt {recorded.attempts} failed; retry scheduled"
    return f"{recorded.status.value.lower()} after {recorded.attempts} attempts"


# A PENDING delivery never tried for this long, or an evaluation without progress for this
# long, lost its job (enqueue failed after the commit, or Redis lost it).
FIRST_ATTEMPT_GRACE_S = 120.0
EVALUATION_IDLE_S = 600.0


async def recover_desk_jobs(state: WorkerState) -> int:
    """Re-enqueues lost webhook attempts and rule evaluations; arq's job ids make a job that
    is in fact still queued or running impossible to enqueue twice."""
    settings = state.settings
    async with state.sessions() as session:
        stranded = await webhook_service.stranded_deliveries(
            session,
            first_after_s=FIRST_ATTEMPT_GRACE_S,
            retry_after_s=settings.webhook_backoff_max_s * 1.2 + FIRST_ATTEMPT_GRACE_S,
        )
        stalled = await rule_service.stalled_evaluations(session, EVALUATION_IDLE_S)
    for delivery_id, attempt in stranded:
        await state.queue.enqueue_webhook_delivery(delivery_id, attempt)
    for run_id in stalled:
        await state.queue.enqueue_rule_evaluation(run_id)
    return len(stranded) + len(stalled)


async def desk_sweep(ctx: dict[str, Any]) -> int:
    return await recover_desk_jobs(ctx["state"])
