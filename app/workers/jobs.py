"""The `process_call` job and the recovery sweep.

A job takes IDs, reloads the call, and is safe to run again: results are replaced, never
duplicated, and a job whose token no longer matches the call (reprocessed, recovered,
deleted) does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from arq import Retry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.queue import JobQueue, JobState
from app.db.engine import SessionFactory
from app.db.models import Call, PipelineStage
from app.ml.types import RoleDecision, SpeakerHints, Stage, Transcript, overall_progress
from app.services import calls as call_service
from app.services import voiceprints as voiceprint_service
from app.services.effects import EffectTargets, unit_of_work
from app.services.status import StatusPublisher
from app.storage import ObjectStorage
from app.workers.errors import (
    TRANSIENT_INFRASTRUCTURE_ERRORS,
    describe_failure,
    is_retryable,
)
from app.workers.processor import (
    CallProcessor,
    JobDeadlineExceeded,
    JobSuperseded,
    ThrottledProgress,
)
from app.workers.redaction import discard, store_redacted_copy

logger = logging.getLogger(__name__)

RETRY_BACKOFF_S = 10
DEADLINE_GRACE_S = 30
SUPERSESSION_CHECK_S = 1.0


def lease_key(job_token: str) -> str:
    return f"ovozly:lease:{job_token}"


@dataclass
class WorkerState:
    settings: Settings
    sessions: SessionFactory
    redis: Redis
    storage: ObjectStorage
    queue: JobQueue
    publisher: StatusPublisher
    processor: CallProcessor
    worker_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def unit_of_work(self) -> AbstractAsyncContextManager[AsyncSession]:
        """One transaction of the job; its effects (publish, enqueue) run after commit."""
        return unit_of_work(
            self.sessions,
            EffectTargets(queue=self.queue, publisher=self.publisher, storage=self.storage),
        )


def job_timeout_s(settings: Settings, duration_s: float | None) -> float:
    return settings.job_timeout_base_s + settings.job_timeout_per_audio_s * (duration_s or 0.0)


@contextlib.asynccontextmanager
async def held_lease(
    redis: Redis, job_token: str, worker_id: str, ttl_s: float
) -> AsyncIterator[None]:
    """A short-lived key that says a live worker runs this job; recovery reads it."""
    await redis.set(lease_key(job_token), worker_id, px=int(ttl_s * 1000))

    async def refresh() -> None:
        while True:
            await asyncio.sleep(ttl_s / 4)
            with contextlib.suppress(*TRANSIENT_INFRASTRUCTURE_ERRORS):
                await redis.set(lease_key(job_token), worker_id, px=int(ttl_s * 1000))

    task = asyncio.create_task(refresh())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(*TRANSIENT_INFRASTRUCTURE_ERRORS):
            await redis.delete(lease_key(job_token))


class ProgressReporter:
    """Carries progress from the pipeline thread to the event loop, writing and publishing
    each update in order from a single task."""

    def __init__(
        self,
        state: WorkerState,
        call_id: uuid.UUID,
        job_token: str,
        superseded: threading.Event,
    ) -> None:
        self._state = state
        self._superseded = superseded
        self._call_id = call_id
        self._job_token = job_token
        self._loop = asyncio.get_running_loop()
        self._updates: asyncio.Queue[tuple[Stage, float] | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    def __call__(self, stage: Stage, completed: float, total: float) -> None:
        update = (stage, overall_progress(stage, completed, total))
        self._loop.call_soon_threadsafe(self._updates.put_nowait, update)

    async def _run(self) -> None:
        while (update := await self._updates.get()) is not None:
            stage, progress = update
            try:
                async with self._state.unit_of_work() as session:
                    call = await call_service.record_progress(
                        session, self._call_id, self._job_token, PipelineStage(stage), progress
                    )
                if call is None:
                    # Deleted or reprocessed meanwhile: the pipeline stops at its next step.
                    self._superseded.set()
            except TRANSIENT_INFRASTRUCTURE_ERRORS:
                # Progress is advisory; the final state is written by the job itself.
                logger.warning("could not record progress of call %s", self._call_id)

    async def close(self) -> None:
        await self._updates.put(None)
        await self._task


async def process_call(ctx: dict[str, Any], call_id: str, job_token: str) -> str:
    state: WorkerState = ctx["state"]
    call_uuid = uuid.UUID(call_id)
    job_try: int = ctx.get("job_try", 1)
    async with held_lease(state.redis, job_token, state.worker_id, state.settings.job_lease_ttl_s):
        async with state.unit_of_work() as session:
            call = await call_service.claim(session, call_uuid, job_token)
        if call is None:
            return "skipped: call gone, finished or superseded"
        try:
            return await _run_pipeline(state, call, job_token)
        except JobSuperseded:
            return "stopped: call deleted or reprocessed while processing"
        except JobDeadlineExceeded:
            limit = job_timeout_s(state.settings, call.duration_s)
            await _fail(
                state,
                call_uuid,
                job_token,
                f"Processing took longer than the {limit:.0f} s allowed for this recording; "
                "raise JOB_TIMEOUT_BASE_S / JOB_TIMEOUT_PER_AUDIO_S or add workers",
            )
        except Exception as exc:
            if is_retryable(exc) and job_try < state.settings.job_max_tries:
                logger.warning("call %s: transient failure, retrying: %r", call_id, exc)
                raise Retry(defer=RETRY_BACKOFF_S * job_try) from exc
            logger.exception("call %s failed", call_id)
            await _fail(state, call_uuid, job_token, describe_failure(exc))
    return "failed"


async def _run_pipeline(state: WorkerState, call: Call, job_token: str) -> str:
    superseded = threading.Event()
    reporter = ProgressReporter(state, call.id, job_token, superseded)
    deadline = time.monotonic() + job_timeout_s(state.settings, call.duration_s)
    progress = ThrottledProgress(reporter, deadline, superseded)
    hints = SpeakerHints(call.num_speakers, call.min_speakers, call.max_speakers)
    voiceprints = state.processor.pipeline.settings
    agent_voice = None
    if voiceprints.voiceprints_enabled:
        async with state.sessions() as session:
            agent_voice = await voiceprint_service.agent_voice(
                session,
                call.owner_id,
                min_calls=voiceprints.voiceprint_min_calls,
                exclude_call=call.id,
            )
    try:
        async with state.storage.local_copy(call.storage_key) as audio_path:
            # The hook enforces the deadline while the pipeline reports progress; this
            # catches a stage that stops reporting (a hung backend). The thread itself
            # runs on until its next progress report, which then raises.
            scope = asyncio.timeout(deadline - time.monotonic() + DEADLINE_GRACE_S)
            pipeline = asyncio.ensure_future(
                asyncio.to_thread(state.processor.process, audio_path, hints, progress, agent_voice)
            )
            watcher = asyncio.create_task(
                _watch_for_supersession(state, call.id, job_token, superseded)
            )
            try:
                async with scope:
                    await asyncio.wait({pipeline, watcher}, return_when=asyncio.FIRST_COMPLETED)
            except TimeoutError as exc:
                if scope.expired():
                    raise JobDeadlineExceeded() from exc
                raise
            finally:
                watcher.cancel()
            if not pipeline.done():
                # Deleted or reprocessed: the job ends now and frees its slot; the thread
                # stops at its next progress step (about a second away in every stage)
                # and its result is never written.
                raise JobSuperseded()
            transcript, insight, voice_roles = pipeline.result()
            if superseded.is_set():
                raise JobSuperseded()
            # After transcription, from the words and the audio itself: what agents hear.
            redaction = await store_redacted_copy(
                state.settings, state.storage, audio_path, transcript
            )
    finally:
        await reporter.close()
    try:
        async with state.unit_of_work() as session:
            saved = await call_service.save_results(
                session,
                call.id,
                job_token,
                transcript,
                insight,
                analysis_backend=state.processor.analysis_backend,
                redaction=redaction,
                keep_original_audio=state.settings.keep_original_audio,
            )
    except BaseException:
        await discard(state.storage, redaction)
        raise
    if saved is None:
        await discard(state.storage, redaction)
        return "discarded: call deleted or superseded while processing"
    if voiceprints.voiceprints_enabled:
        await _learn_voice(state, call, transcript, voice_roles)
    return "success"


async def _learn_voice(
    state: WorkerState, call: Call, transcript: Transcript, voice_roles: dict[str, RoleDecision]
) -> None:
    """After the call's SUCCESS is committed: what the call teaches of its agent's voice.
    A failure here is logged and never fails the call (its results are already saved);
    the call's next reprocess learns again."""
    settings = state.processor.pipeline.settings
    try:
        async with state.unit_of_work() as session:
            await voiceprint_service.learn_from_call(
                session,
                call.owner_id,
                call.id,
                transcript,
                voice_roles,
                agent_channel=settings.agent_channel,
                min_calls=settings.voiceprint_min_calls,
            )
    except Exception:
        logger.exception("call %s: could not learn its agent's voiceprint", call.id)


async def _watch_for_supersession(
    state: WorkerState, call_id: uuid.UUID, job_token: str, superseded: threading.Event
) -> None:
    """Checks every second whether the call was deleted or reprocessed, so a job stops
    within seconds in any stage, decoding included, not only when it next writes progress.
    Returns once superseded; database hiccups only delay the check."""
    while not superseded.is_set():
        await asyncio.sleep(SUPERSESSION_CHECK_S)
        try:
            async with state.sessions() as session:
                current = await call_service.is_current_job(session, call_id, job_token)
        except TRANSIENT_INFRASTRUCTURE_ERRORS:
            continue
        if not current:
            superseded.set()


async def _fail(
    state: WorkerState, call_id: uuid.UUID, job_token: str | None, message: str
) -> None:
    async with state.unit_of_work() as session:
        await call_service.fail(session, call_id, job_token, message)


async def recover_stalled_calls(state: WorkerState) -> int:
    """Re-enqueues RUNNING calls whose job vanished (lost enqueue, dead worker), or fails
    them once they have used up their tries (the rules are the calls service's). Returns
    how many calls it touched."""
    touched = 0
    async with state.sessions() as session:
        candidates = await call_service.running_calls_idle_since(
            session, timedelta(seconds=state.settings.recovery_idle_s)
        )
    for candidate in candidates:
        if candidate.job_id is not None and await _job_is_alive(state, candidate.job_id):
            continue
        async with state.unit_of_work() as session:
            recovered = await call_service.recover(
                session, candidate, max_tries=state.settings.job_max_tries
            )
        if recovered is not None:
            touched += 1
            logger.info("recovered stalled call %s: %s", recovered.id, recovered.status.value)
    return touched


async def _job_is_alive(state: WorkerState, job_token: str) -> bool:
    """Queued and not started: alive. Started: alive only while its worker holds the lease
    (a worker that died leaves arq's in-progress marker behind for hours)."""
    if await state.redis.exists(lease_key(job_token)):
        return True
    return await state.queue.job_state(job_token) is JobState.QUEUED


async def sweep_forever(state: WorkerState) -> None:
    """The recovery sweep, every `recovery_sweep_s`, as a task of its own beside the job
    slots: it never waits behind a long job (as an arq cron job it needed a free slot).
    Every worker runs it; recovery is idempotent (row locks, the touched-at check)."""
    while True:
        await asyncio.sleep(state.settings.recovery_sweep_s)
        try:
            recovered = await recover_stalled_calls(state)
        except TRANSIENT_INFRASTRUCTURE_ERRORS:
            logger.warning("recovery sweep: database or Redis unreachable; will retry")
            continue
        except Exception:
            logger.exception("recovery sweep failed; will retry")
            continue
        if recovered:
            logger.info("recovery sweep touched %d stalled calls", recovered)
