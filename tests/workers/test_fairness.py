"""Long calls are bounded and fair: a short call gets a slot within seconds while a long one
runs, the recovery sweep never waits for a job slot, and a deleted call's job stops within
seconds even while decoding. Real worker loops (arq) on the real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from app.api.resources import Resources
from app.core.config import Settings
from app.core.queue import LONG_QUEUE_NAME, QUEUE_NAME
from app.db.models import Call, CallStatus, PipelineStage, User
from app.ml.types import Stage
from app.services import calls as call_service
from app.services.effects import unit_of_work
from app.workers.main import create_workers, keep_running
from app.workers.processor import CallProcessor, ThrottledProgress
from tests.factories import make_user, uploaded_call, wait_until, write_tone

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 minutes of tone: seconds of decoding, no speech to transcribe."""
    return write_tone(
        tmp_path_factory.mktemp("long") / "long.flac",
        container="flac",
        codec="flac",
        sample_rate=8000,
        channels=1,
        seconds=1200,
    )


async def _reload(resources: Resources, call_id: uuid.UUID) -> Call | None:
    async with resources.sessions() as session:
        return await session.get(Call, call_id)


@asynccontextmanager
async def running_worker(settings: Settings, processor: CallProcessor) -> AsyncIterator[None]:
    """Both queues' arq loops, as `ovozly worker` runs them, until the block ends."""
    workers = create_workers(settings, processor=processor)
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(keep_running(worker, stopping)) for worker in workers]
    try:
        yield
    finally:
        stopping.set()
        for worker in workers:
            await worker.close()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _delete(resources: Resources, call_id: uuid.UUID) -> None:
    """As `deleteCall` does it, by the call's owner (effects after the commit)."""
    async with unit_of_work(resources.sessions, resources.effect_targets) as session:
        call = await session.get(Call, call_id)
        assert call is not None
        owner = await session.get(User, call.owner_id)
        assert owner is not None
        await call_service.delete_call(session, owner, call_id)


async def _started(resources: Resources, call_id: uuid.UUID) -> bool:
    call = await _reload(resources, call_id)
    return call is not None and call.started_at is not None


async def _finished(resources: Resources, call_id: uuid.UUID) -> bool:
    call = await _reload(resources, call_id)
    return call is not None and call.status is not CallStatus.RUNNING


async def test_a_short_call_gets_a_slot_while_a_long_call_runs(
    http: httpx.AsyncClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
    long_recording: Path,
    short_speech: Path,
) -> None:
    owner = (await make_user(resources.sessions, "agent1")).id
    long_call = await uploaded_call(resources, owner, long_recording)
    assert await resources.redis.zcard(LONG_QUEUE_NAME) == 1, "routed by its duration"
    async with running_worker(settings, processor):
        await wait_until(
            lambda: _started(resources, long_call.id), "the long call", 60, interval_s=0.1
        )
        short_call = await uploaded_call(resources, owner, short_speech)
        assert await resources.redis.zscore(QUEUE_NAME, str(short_call.job_id)) is not None
        waited = await wait_until(
            lambda: _started(resources, short_call.id), "a slot", 10, interval_s=0.1
        )
        assert waited < 5, waited
        await wait_until(
            lambda: _finished(resources, short_call.id), "the short call", 120, interval_s=0.1
        )
        short = await _reload(resources, short_call.id)
        assert short is not None and short.status is CallStatus.SUCCESS
        # The short one finished while the long one was still being processed.
        assert not await _finished(resources, long_call.id)
        await _delete(resources, long_call.id)


async def test_a_deleted_call_stops_within_seconds_while_decoding(
    http: httpx.AsyncClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
    long_recording: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The decoder reports each second of audio it decodes to the job's progress hook: the
    # first such report shows the job is inside the decoder, which the call's row cannot show.
    decoding = threading.Event()
    report = ThrottledProgress.__call__

    def report_and_tell(self: ThrottledProgress, stage: Stage, done: float, total: float) -> None:
        if stage is Stage.DECODING and 0 < done < total:
            decoding.set()
        report(self, stage, done, total)

    monkeypatch.setattr(ThrottledProgress, "__call__", report_and_tell)
    owner = (await make_user(resources.sessions, "agent1")).id
    call = await uploaded_call(resources, owner, long_recording)
    workers = create_workers(settings, burst=True, processor=processor)
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(keep_running(worker, stopping)) for worker in workers]
    try:
        await wait_until(decoding.is_set, "the job to be decoding", 60, interval_s=0.05)
        row = await _reload(resources, call.id)
        assert row is not None and row.stage is PipelineStage.DECODING
        await _delete(resources, call.id)
        deleted_at = time.monotonic()
        # Burst workers return once their jobs are done: the job ended.
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        stopped_after = time.monotonic() - deleted_at
        assert stopped_after < 5, stopped_after
    finally:
        for worker in workers:
            await worker.close()


async def test_the_recovery_sweep_does_not_wait_for_a_job_slot(
    http: httpx.AsyncClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
    long_recording: Path,
    short_speech: Path,
) -> None:
    quick_sweeps = settings.model_copy(
        update={
            "recovery_sweep_s": 1.0,
            "recovery_idle_s": 1.0,
            # Everything on the short queue, whose one slot the long recording occupies.
            "long_call_seconds": 24 * 3600.0,
        }
    )
    owner = (await make_user(resources.sessions, "agent1")).id
    busy = await uploaded_call(resources, owner, long_recording)
    orphan = await uploaded_call(resources, owner, short_speech, enqueue=False)
    async with resources.sessions() as session, session.begin():
        await session.execute(
            update(Call)
            .where(Call.id == orphan.id)
            .values(updated_at=datetime.now(UTC) - timedelta(minutes=5))
        )
    async with running_worker(quick_sweeps, processor):
        await wait_until(lambda: _started(resources, busy.id), "the long call", 60, interval_s=0.1)

        async def requeued() -> bool:
            row = await _reload(resources, orphan.id)
            return row is not None and row.job_id != orphan.job_id

        # The one slot is busy for a while yet; the sweep still runs on time.
        await wait_until(requeued, "the sweep to re-enqueue the orphan", 10, interval_s=0.1)
        assert not await _finished(resources, busy.id)
        await _delete(resources, busy.id)
        await wait_until(
            lambda: _finished(resources, orphan.id), "the orphan to finish", 120, interval_s=0.1
        )
    row = await _reload(resources, orphan.id)
    assert row is not None and row.status is CallStatus.SUCCESS
