"""arq worker wiring: resources on start-up, models loaded once, the job and the sweep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import Worker, func

from app.config import Settings
from app.db.engine import create_engine, create_session_factory
from app.queue import (
    DELIVER_WEBHOOK_JOB,
    EVALUATE_RULES_JOB,
    PROCESS_CALL_JOB,
    QUEUE_NAME,
    ArqJobQueue,
)
from app.services.status import RedisStatusPublisher
from app.storage import storage_for
from app.workers.desk import WEBHOOK_CLIENT, deliver_webhook, desk_sweep, evaluate_rules
from app.workers.jobs import WorkerState, process_call, recover_stalled_calls, sweep_forever
from app.workers.processor import CallProcessor

logger = logging.getLogger(__name__)


# arq's own timeout is only a backstop; each job enforces a deadline scaled to its audio.
HARD_JOB_TIMEOUT_S = 24 * 3600


async def on_startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_size=max(2, settings.worker_concurrency))
    processor: CallProcessor | None = ctx.get("processor")
    if processor is None:
        logger.info("loading speech and analysis models")
        processor = await asyncio.to_thread(CallProcessor.load)
    state = WorkerState(
        settings=settings,
        sessions=create_session_factory(engine),
        redis=ctx["redis"],
        storage=storage_for(settings),
        queue=ArqJobQueue(ctx["redis"], QUEUE_NAME),
        publisher=RedisStatusPublisher(ctx["redis"]),
        processor=processor,
    )
    ctx["engine"] = engine
    ctx["state"] = state
    recovered = await recover_stalled_calls(state)
    if recovered:
        logger.info("recovered %d stalled calls at start-up", recovered)
    ctx["sweeper"] = asyncio.create_task(sweep_forever(state))


async def on_shutdown(ctx: dict[str, Any]) -> None:
    sweeper: asyncio.Task[None] | None = ctx.get("sweeper")
    if sweeper is not None:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
    state: WorkerState | None = ctx.get("state")
    if state is not None:
        await state.storage.close()
    client = ctx.get(WEBHOOK_CLIENT)
    if client is not None:
        await client.aclose()
    engine = ctx.get("engine")
    if engine is not None:
        await engine.dispose()


def create_worker(
    settings: Settings, *, burst: bool = False, processor: CallProcessor | None = None
) -> Worker:
    assert settings.redis_url is not None
    ctx: dict[str, Any] = {"settings": settings}
    if processor is not None:
        ctx["processor"] = processor
    return Worker(
        functions=[
            func(
                process_call,
                name=PROCESS_CALL_JOB,
                max_tries=settings.job_max_tries,
                timeout=HARD_JOB_TIMEOUT_S,
                keep_result=0,
            ),
            func(
                evaluate_rules,
                name=EVALUATE_RULES_JOB,
                max_tries=1,
                timeout=6 * 3600,
                keep_result=0,
            ),
            # One attempt per job; the job schedules the next attempt itself with backoff.
            func(
                deliver_webhook, name=DELIVER_WEBHOOK_JOB, max_tries=1, timeout=120, keep_result=0
            ),
        ],
        cron_jobs=[
            cron(desk_sweep, second=45, run_at_startup=False, unique=True, timeout=120),
        ],
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        queue_name=QUEUE_NAME,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        max_jobs=settings.worker_concurrency,
        ctx=ctx,
        burst=burst,
        handle_signals=not burst,
        poll_delay=0.2,
    )


def run_worker(
    settings: Settings, *, burst: bool = False, processor: CallProcessor | None = None
) -> None:
    if settings.worker_nice:
        # Batch work yields the CPU to the API where both share a machine.
        os.nice(settings.worker_nice)
    worker = create_worker(settings, burst=burst, processor=processor)
    worker.run()
