"""The process_call job end to end in a burst-mode arq worker on the real Redis and models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update

from app.api.resources import Resources
from app.core.config import Settings
from app.db.models import Call, CallStatus, PipelineStage, Segment, User
from app.services import calls as call_service
from app.services.effects import unit_of_work
from app.workers.jobs import WorkerState, lease_key, recover_stalled_calls
from app.workers.processor import CallProcessor
from tests.factories import make_user, uploaded_call
from tests.workers.helpers import run_worker_burst

pytestmark = pytest.mark.slow


async def _reload(resources: Resources, call: Call) -> Call:
    async with resources.sessions() as session:
        fresh = await session.get(Call, call.id)
        assert fresh is not None
        return fresh


async def _segment_count(resources: Resources, call: Call) -> int:
    async with resources.sessions() as session:
        count: int = (
            await session.execute(
                select(func.count()).select_from(Segment).where(Segment.call_id == call.id)
            )
        ).scalar_one()
        return count


async def test_a_call_reaches_success_with_speaker_attributed_words(
    http: httpx.AsyncClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
    short_speech: Path,
) -> None:
    owner = (await make_user(resources.sessions, "agent1")).id
    call = await uploaded_call(resources, owner, short_speech)
    await run_worker_burst(settings, processor)

    done = await _reload(resources, call)
    assert done.status is CallStatus.SUCCESS, done.error
    assert done.stage is PipelineStage.DONE
    assert done.progress == 1.0
    assert done.finished_at is not None
    assert done.attempts == 1
    async with resources.sessions() as session:
        segments = (
            (
                await session.execute(
                    select(Segment).where(Segment.call_id == call.id).order_by(Segment.position)
                )
            )
            .scalars()
            .all()
        )
    text = " ".join(s.text for s in segments).lower()
    assert "fellow americans" in text
    assert all(s.words for s in segments)
    assert all(s.start_s <= s.end_s for s in segments)
    assert [s.start_s for s in segments] == sorted(s.start_s for s in segments)


async def test_a_rerun_with_the_same_token_changes_nothing_and_reprocess_replaces_results(
    http: httpx.AsyncClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
    short_speech: Path,
) -> None:
    owner = (await make_user(resources.sessions, "agent1")).id
    call = await uploaded_call(resources, owner, short_speech)
    await run_worker_burst(settings, processor)
    first_count = await _segment_count(resources, call)
    assert first_count > 0

    # The same job delivered twice (e.g. arq re-running after a lost ack) is a no-op.
    assert call.job_id is not None
    await resources.queue.enqueue_process_call(call.id, call.job_id + "-dup")
    await run_worker_burst(settings, processor)
    assert (await _reload(resources, call)).attempts == 1

    # Reprocess through the calls service: its job is enqueued after the commit.
    async with unit_of_work(resources.sessions, resources.effect_targets) as session:
        viewer = await session.get(User, owner)
        assert viewer is not None
        restarted = await call_service.reprocess_call(session, viewer, call.id, None)
    assert restarted.job_id != call.job_id
    await run_worker_burst(settings, processor)
    assert (await _reload(resources, call)).status is CallStatus.SUCCESS
    assert await _segment_count(resources, call) == first_count


async def test_an_undecodable_stored_file_ends_in_fail_with_a_readable_error(
    http: httpx.AsyncClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
    garbage_audio: Path,
) -> None:
    owner = (await make_user(resources.sessions, "agent1")).id
    call = await uploaded_call(resources, owner, garbage_audio, probe=False)
    await run_worker_burst(settings, processor)
    failed = await _reload(resources, call)
    assert failed.status is CallStatus.FAIL
    assert failed.error
    assert "Traceback" not in failed.error
    assert failed.finished_at is not None
    assert await _segment_count(resources, call) == 0


async def test_recovery_requeues_orphaned_calls_and_fails_exhausted_ones(
    http: httpx.AsyncClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
    short_speech: Path,
) -> None:
    owner = (await make_user(resources.sessions, "agent1")).id
    orphan = await uploaded_call(resources, owner, short_speech, enqueue=False)
    exhausted = await uploaded_call(resources, owner, short_speech, enqueue=False)
    alive = await uploaded_call(resources, owner, short_speech, enqueue=False)
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    async with resources.sessions() as session, session.begin():
        await session.execute(
            update(Call)
            .where(Call.id.in_([orphan.id, exhausted.id, alive.id]))
            .values(updated_at=long_ago, stage=PipelineStage.TRANSCRIBING)
        )
        await session.execute(
            update(Call)
            .where(Call.id == exhausted.id)
            .values(attempts=settings.job_max_tries, updated_at=long_ago)
        )
    assert alive.job_id is not None
    await resources.redis.set(lease_key(alive.job_id), "another-worker", ex=60)

    state = WorkerState(
        settings=settings,
        sessions=resources.sessions,
        redis=resources.redis,
        storage=resources.storage,
        queue=resources.queue,
        publisher=resources.publisher,
        processor=processor,
    )
    assert await recover_stalled_calls(state) == 2

    requeued = await _reload(resources, orphan)
    assert requeued.status is CallStatus.RUNNING
    assert requeued.stage is PipelineStage.QUEUED
    assert requeued.job_id != orphan.job_id
    gave_up = await _reload(resources, exhausted)
    assert gave_up.status is CallStatus.FAIL
    assert gave_up.error is not None and "stopped" in gave_up.error
    untouched = await _reload(resources, alive)
    assert untouched.job_id == alive.job_id

    await resources.redis.delete(lease_key(alive.job_id))
    await run_worker_burst(settings, processor)
    assert (await _reload(resources, orphan)).status is CallStatus.SUCCESS


async def test_a_call_without_speech_succeeds_with_an_empty_analysis(
    http: httpx.AsyncClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
    tmp_path: Path,
) -> None:
    import soundfile

    from app.db.models import CallAnalysis, CallMetrics
    from tests.factories import noise

    silence = tmp_path / "hold-music-free-silence.wav"
    soundfile.write(silence, noise(5.0, level=1e-4, seed=7), 16000)
    owner = (await make_user(resources.sessions, "agent1")).id
    call = await uploaded_call(resources, owner, silence)
    await run_worker_burst(settings, processor)

    done = await _reload(resources, call)
    assert done.status is CallStatus.SUCCESS, done.error
    assert await _segment_count(resources, call) == 0
    async with resources.sessions() as session:
        analysis = await session.get(CallAnalysis, call.id)
        metrics = await session.get(CallMetrics, call.id)
    assert analysis is not None
    assert analysis.language == "und"
    assert metrics is not None
    assert metrics.talk_s == 0
    assert metrics.duration_s == pytest.approx(5.0, abs=0.1)
