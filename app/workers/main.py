"""arq worker wiring: resources on start-up, models loaded once, the job and the sweep.

One worker process serves two queues: short calls with WORKER_CONCURRENCY slots, and calls
longer than LONG_CALL_SECONDS with one slot of their own, so a short call never waits
behind a long one. The recovery sweep is a task beside the slots. Losing Redis or the
database does not end the process: the arq loops start again once they are back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import Worker, func

from app.core.config import Settings
from app.core.heartbeat import (
    FAILED_TTL_S,
    HEARTBEAT_TTL_S,
    HeartbeatPublisher,
    WorkerHeartbeat,
    write_heartbeat,
)
from app.core.queue import (
    DELIVER_WEBHOOK_JOB,
    EVALUATE_RULES_JOB,
    LONG_QUEUE_NAME,
    PROCESS_CALL_JOB,
    QUEUE_NAME,
    ArqJobQueue,
)
from app.db.engine import create_engine, create_session_factory
from app.services.status import RedisStatusPublisher
from app.storage import storage_for
from app.workers.audit import audit_sweep
from app.workers.desk import WEBHOOK_CLIENT, deliver_webhook, desk_sweep, evaluate_rules
from app.workers.errors import TRANSIENT_INFRASTRUCTURE_ERRORS
from app.workers.jobs import WorkerState, process_call, recover_stalled_calls, sweep_forever
from app.workers.processor import CallProcessor, ModelCheckFailed
from app.workers.retention import retention_forever

logger = logging.getLogger(__name__)


# arq's own timeout is only a backstop; each job enforces a deadline scaled to its audio.
HARD_JOB_TIMEOUT_S = 24 * 3600
PROCESS = "process"
"""ctx key of what the worker loops of one process share (`create_workers`)."""


async def on_startup(ctx: dict[str, Any]) -> None:
    if "state" in ctx:
        # arq runs this again when its loop restarts after an outage: keep what exists.
        return
    settings: Settings = ctx["settings"]
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_size=max(2, settings.worker_concurrency))
    processor: CallProcessor | None = ctx.get("processor")
    if processor is None:
        logger.info("worker: loading and checking the models")
        try:
            processor = await asyncio.to_thread(CallProcessor.load)
        except ModelCheckFailed as failed:
            await write_heartbeat(
                ctx["redis"],
                WorkerHeartbeat.for_this_process(
                    ready=False,
                    device=failed.report.device,
                    check=failed.report.as_dict(),
                    error=failed.report.summary(),
                ),
                FAILED_TTL_S,
            )
            raise
    report = processor.check
    # The loops of one process (short and long calls) share its heartbeat, its "ready"
    # line and the watch of its analysis models: the first loop to start makes them.
    process: dict[str, Any] = ctx.setdefault(PROCESS, {})
    publisher: HeartbeatPublisher | None = process.get("heartbeat")
    if publisher is None:
        publisher = HeartbeatPublisher(
            ctx["redis"],
            WorkerHeartbeat.for_this_process(
                ready=True,
                device=report.device if report else processor.pipeline.device,
                check=report.as_dict() if report else {},
            ),
        )
        process["heartbeat"] = publisher
        await publisher.start()
        if report is not None:
            logger.info("worker ready: %s", report.summary())
        processor.analysis.start()
        ctx["analysis_watch"] = asyncio.create_task(
            watch_analysis_models(ctx, processor, publisher)
        )
    ctx["heartbeat"] = publisher
    state = WorkerState(
        settings=settings,
        sessions=create_session_factory(engine),
        redis=ctx["redis"],
        storage=storage_for(settings),
        queue=ArqJobQueue(ctx["redis"], QUEUE_NAME, long_call_s=settings.long_call_seconds),
        publisher=RedisStatusPublisher(ctx["redis"]),
        processor=processor,
    )
    ctx["engine"] = engine
    ctx["state"] = state
    if ctx.get("sweeps", True):
        recovered = await recover_stalled_calls(state)
        if recovered:
            logger.info("recovered %d stalled calls at start-up", recovered)
        ctx["sweeper"] = asyncio.create_task(sweep_forever(state))
        ctx["retention"] = asyncio.create_task(retention_forever(state))


async def watch_analysis_models(
    ctx: dict[str, Any], processor: CallProcessor, publisher: HeartbeatPublisher
) -> None:
    """Once the analysis models are loaded (after the worker said ready), the heartbeat's
    check lists them too; if they fail, the heartbeat says so, as a failed start-up check
    would, and the worker stops (the calls it holds fail their analysis with the reason)."""
    try:
        # Shielded: this watcher's cancellation (one of the worker's loops stopping) must
        # not reach the load, which the processor's other users share.
        _, analysis_report = await asyncio.shield(asyncio.wrap_future(processor.analysis.future))
    except ModelCheckFailed as failed:
        heartbeat = publisher.heartbeat
        heartbeat.ready = False
        heartbeat.error = failed.report.summary()
        heartbeat.check = failed.report.as_dict()
        await publisher.stop()
        await write_heartbeat(ctx["redis"], heartbeat, FAILED_TTL_S)
        logger.error("worker stopping: the analysis models failed: %s", heartbeat.error)
        request_stop = ctx.get(REQUEST_STOP)
        if request_stop is not None:
            request_stop()
        return
    except Exception:
        logger.exception("worker: loading the analysis models failed")
        raise
    if processor.check is not None:
        publisher.heartbeat.check = processor.check.joined(analysis_report).as_dict()
        with contextlib.suppress(*TRANSIENT_INFRASTRUCTURE_ERRORS):
            await write_heartbeat(ctx["redis"], publisher.heartbeat, HEARTBEAT_TTL_S)
    logger.info("analysis models ready: %s", analysis_report.summary())


REQUEST_STOP = "request_stop"
"""ctx key of a callable that stops the worker process (set by `serve`)."""


async def on_shutdown(ctx: dict[str, Any]) -> None:
    watch: asyncio.Task[None] | None = ctx.get("analysis_watch")
    if watch is not None and not watch.done():
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    publisher: HeartbeatPublisher | None = ctx.get("heartbeat")
    if publisher is not None:
        await publisher.stop()
    for name in ("sweeper", "retention"):
        sweeper: asyncio.Task[None] | None = ctx.get(name)
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
    settings: Settings,
    *,
    burst: bool = False,
    processor: CallProcessor | None = None,
    queue_name: str = QUEUE_NAME,
    max_jobs: int | None = None,
    sweeps: bool = True,
    process: dict[str, Any] | None = None,
) -> Worker:
    assert settings.redis_url is not None
    ctx: dict[str, Any] = {
        "settings": settings,
        "sweeps": sweeps,
        PROCESS: process if process is not None else {},
    }
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
        # The desk's sweep runs once per worker process, on the short-call loop.
        cron_jobs=(
            [
                cron(desk_sweep, second=45, run_at_startup=False, unique=True, timeout=120),
                cron(audit_sweep, minute=17, second=0, run_at_startup=False, unique=True),
            ]
            if sweeps
            else []
        ),
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        queue_name=queue_name,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        max_jobs=max_jobs or settings.worker_concurrency,
        ctx=ctx,
        burst=burst,
        handle_signals=False,
        # arq polls its queue: a new call waited half this on average before its job
        # began (0.1 s of a 30 s call's 3.2 s); 20 polls a second are nothing to Redis.
        poll_delay=0.05,
    )


def create_workers(
    settings: Settings, *, burst: bool = False, processor: CallProcessor | None = None
) -> list[Worker]:
    """The short-call worker (runs the sweep) and the long-call worker (one slot), sharing
    one heartbeat and one "ready" line."""
    process: dict[str, Any] = {}
    return [
        create_worker(settings, burst=burst, processor=processor, process=process),
        create_worker(
            settings,
            burst=burst,
            processor=processor,
            queue_name=LONG_QUEUE_NAME,
            max_jobs=1,
            sweeps=False,
            process=process,
        ),
    ]


RECONNECT_MAX_DELAY_S = 30.0


async def keep_running(worker: Worker, stopping: asyncio.Event) -> None:
    """Runs an arq worker loop until it ends (burst) or a stop is asked; when Redis or the
    database goes away it waits and starts the loop again instead of letting the process
    die (jobs in flight keep their leases, or are recovered by the sweep)."""
    delay = 1.0
    while not stopping.is_set():
        try:
            await worker.async_run()
            return
        except asyncio.CancelledError:
            if stopping.is_set():
                return
            raise
        except TRANSIENT_INFRASTRUCTURE_ERRORS as exc:
            logger.warning(
                "worker for %s lost Redis or the database (%r); starting again in %.0f s",
                worker.queue_name,
                exc,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY_S)


async def serve(
    settings: Settings, *, burst: bool = False, processor: CallProcessor | None = None
) -> None:
    if processor is None:
        logger.info("loading speech and analysis models")
        processor = await asyncio.to_thread(CallProcessor.load)
    workers = create_workers(settings, burst=burst, processor=processor)
    stopping = asyncio.Event()

    def stop(signum: signal.Signals) -> None:
        stopping.set()
        for worker in workers:
            worker.handle_sig(signum)

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)
    for worker in workers:
        worker.ctx[REQUEST_STOP] = lambda: stop(signal.SIGTERM)
    try:
        await asyncio.gather(*(keep_running(worker, stopping) for worker in workers))
    finally:
        for worker in workers:
            with contextlib.suppress(Exception):
                await worker.close()


def run_worker(
    settings: Settings, *, burst: bool = False, processor: CallProcessor | None = None
) -> None:
    if settings.worker_nice:
        # Batch work yields the CPU to the API where both share a machine.
        os.nice(settings.worker_nice)
    asyncio.run(serve(settings, burst=burst, processor=processor))
