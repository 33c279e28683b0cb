"""The calls service's lifecycle rules on the real PostgreSQL, Redis queue, pub/sub and local
storage, without GraphQL or a worker: create, reprocess, delete, claim, progress, results,
failure, recovery, and effects that run only after the commit."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from sqlalchemy import func, select, update

from app.core.config import Settings
from app.core.errors import BadUserInput, Forbidden, NotFound
from app.core.queue import QUEUE_NAME, ArqJobQueue, JobState
from app.db.engine import SessionFactory
from app.db.models import Call, CallStatus, PipelineStage, Role, Segment, User
from app.db.models.desk import CallCategory, Category, WebhookDelivery, WebhookEvent
from app.dev.embedded import free_tcp_port
from app.ml.types import SpeakerHints
from app.services import calls as call_service
from app.services import webhooks as webhook_service
from app.services.effects import EffectTargets, after_commit, unit_of_work
from app.services.status import RedisStatusPublisher, StatusEvent, status_channel
from app.storage import LocalDiskStorage
from tests.factories import Results, make_call, make_user, rich_results, simple_results

# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(RedisSettings.from_dsn(redis_url))
    await redis.flushdb()
    yield redis
    await redis.aclose()


@pytest.fixture
def targets(pool: ArqRedis, tmp_path: Path) -> EffectTargets:
    return EffectTargets(
        queue=ArqJobQueue(pool, QUEUE_NAME),
        publisher=RedisStatusPublisher(pool),
        storage=LocalDiskStorage(tmp_path / "objects"),
    )


@pytest.fixture
async def events(redis_url: str) -> AsyncIterator[PubSub]:
    """Every call status event published from now on."""
    client = Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.psubscribe("ovozly:call-status:*")
    assert (await pubsub.get_message(timeout=5))["type"] == "psubscribe"
    yield pubsub
    await pubsub.aclose()
    await client.aclose()


async def published(pubsub: PubSub) -> list[StatusEvent]:
    """The events published so far. A marker is published after them and read up to: Redis
    delivers a subscriber's messages in the order it ran the PUBLISHes, and the service has
    published its events (after the commit) before it returned."""
    marker = status_channel(f"marker-{uuid.uuid4().hex}").encode()
    async with Redis(connection_pool=pubsub.connection_pool) as publisher:
        await publisher.publish(marker, b"")
    found: list[StatusEvent] = []
    while True:
        message = await pubsub.get_message(timeout=5)
        assert message is not None, "the marker published after the events never arrived"
        if message["type"] != "pmessage":
            continue
        if message["channel"] == marker:
            return found
        found.append(StatusEvent.from_json(message["data"]))


@pytest.fixture
async def agent(settings: Settings, sessions: SessionFactory, clean_database: None) -> User:
    return await make_user(sessions, "agent1")


@pytest.fixture
def audio(tmp_path: Path) -> Path:
    path = tmp_path / "call.wav"
    path.write_bytes(b"stored bytes; the service never decodes them")
    return path


async def new_call(
    sessions: SessionFactory, targets: EffectTargets, owner: User, audio: Path
) -> Call:
    return await make_call(sessions, targets.storage, owner.id, audio, probe=False)


async def reload(sessions: SessionFactory, call_id: uuid.UUID) -> Call | None:
    async with sessions() as session:
        return await session.get(Call, call_id)


async def job_state(targets: EffectTargets, call: Call) -> JobState:
    assert call.job_id is not None
    return await targets.queue.job_state(call.job_id)


async def segment_count(sessions: SessionFactory, call_id: uuid.UUID) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(Segment).where(Segment.call_id == call_id)
        return (await session.execute(query)).scalar_one()


async def succeeded(
    sessions: SessionFactory, targets: EffectTargets, call: Call, results: Results | None = None
) -> Call:
    """The call after its job claimed it and saved `results` (rich ones by default)."""
    transcript, insight = results or rich_results()
    assert call.job_id is not None
    async with unit_of_work(sessions, targets) as session:
        assert await call_service.claim(session, call.id, call.job_id) is not None
        saved = await call_service.save_results(
            session, call.id, call.job_id, transcript, insight, analysis_backend="test"
        )
    assert saved is not None
    return saved


# --- the unit of work -----------------------------------------------------------------------


async def test_effects_run_after_the_commit_and_never_after_a_rollback(
    sessions: SessionFactory, targets: EffectTargets, agent: User, audio: Path, events: PubSub
) -> None:
    call = await new_call(sessions, targets, agent, audio)
    token = f"{call.job_id}-effect"
    async with unit_of_work(sessions, targets) as session:
        after_commit(session).enqueue_job(call.id, token)
        # Asked for, not run: nothing is enqueued before the commit.
        assert await targets.queue.job_state(token) is JobState.UNKNOWN
    assert await targets.queue.job_state(token) is JobState.QUEUED

    rolled_back = f"{call.job_id}-rolled-back"

    async def failing_work() -> None:
        async with unit_of_work(sessions, targets) as session:
            after_commit(session).enqueue_job(call.id, rolled_back)
            after_commit(session).publish_status(StatusEvent.of(call))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await failing_work()
    assert await targets.queue.job_state(rolled_back) is JobState.UNKNOWN
    assert await published(events) == []


async def test_a_failing_effect_is_logged_and_the_others_still_run(
    sessions: SessionFactory,
    targets: EffectTargets,
    agent: User,
    audio: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    call = await new_call(sessions, targets, agent, audio)
    # A real Redis client on a port nobody listens on: publishing fails to connect.
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_tcp_port()}/0")
    broken = EffectTargets(
        queue=targets.queue, publisher=RedisStatusPublisher(unreachable), storage=targets.storage
    )
    token = f"{call.job_id}-after-failure"
    try:
        async with unit_of_work(sessions, broken) as session:
            after_commit(session).publish_status(StatusEvent.of(call))
            after_commit(session).enqueue_job(call.id, token)
    finally:
        await unreachable.aclose()
    assert "could not publish the status" in caplog.text
    assert await targets.queue.job_state(token) is JobState.QUEUED


async def test_services_refuse_to_run_outside_a_unit_of_work(
    sessions: SessionFactory, targets: EffectTargets, agent: User, audio: Path
) -> None:
    call = await new_call(sessions, targets, agent, audio)
    assert call.job_id is not None
    async with sessions() as session, session.begin():
        with pytest.raises(RuntimeError, match="unit_of_work"):
            await call_service.claim(session, call.id, call.job_id)


# --- create ---------------------------------------------------------------------------------


async def test_who_may_upload_for_whom_and_which_hints_are_refused(
    sessions: SessionFactory, agent: User
) -> None:
    admin = await make_user(sessions, "admin", Role.ADMIN)
    other = await make_user(sessions, "agent2")
    gone = await make_user(sessions, "gone")
    async with sessions() as session, session.begin():
        await session.execute(update(User).where(User.id == gone.id).values(is_active=False))
    hints = SpeakerHints()
    async with sessions() as session:
        assert await call_service.check_upload(session, agent, None, hints) == agent.id
        assert await call_service.check_upload(session, agent, agent.id, hints) == agent.id
        assert await call_service.check_upload(session, admin, None, hints) == admin.id
        assert await call_service.check_upload(session, admin, agent.id, hints) == agent.id
        for someone in (other.id, admin.id, uuid.uuid4()):
            with pytest.raises(Forbidden):
                await call_service.check_upload(session, agent, someone, hints)
        # Calls belong to active agents: not to another admin, a deactivated or unknown user.
        for not_an_agent in (gone.id, uuid.uuid4()):
            with pytest.raises(NotFound, match="Agent"):
                await call_service.check_upload(session, admin, not_an_agent, hints)
        for bad in (
            SpeakerHints(num_speakers=0),
            SpeakerHints(max_speakers=33),
            SpeakerHints(min_speakers=3, max_speakers=2),
            SpeakerHints(num_speakers=5, min_speakers=1, max_speakers=3),
        ):
            with pytest.raises(BadUserInput):
                await call_service.check_upload(session, agent, None, bad)


async def test_a_created_call_is_queued_and_its_job_enqueued_after_the_commit(
    sessions: SessionFactory, targets: EffectTargets, agent: User, audio: Path
) -> None:
    from app.services.uploads import AudioInfo, StoredUpload

    key = "calls/2026/12/01/" + uuid.uuid4().hex
    await targets.storage.put_file(key, audio)
    upload = StoredUpload(key, "call.wav", 44, "0" * 64, AudioInfo(1.5, 2, 8000, "pcm", "wav"))
    hints = SpeakerHints(min_speakers=2, max_speakers=3)
    async with unit_of_work(sessions, targets) as session:
        call = await call_service.create_call(session, agent.id, upload, hints)
        assert await job_state(targets, call) is JobState.UNKNOWN
    assert await job_state(targets, call) is JobState.QUEUED
    stored = await reload(sessions, call.id)
    assert stored is not None
    assert (stored.status, stored.stage, stored.progress) == (
        CallStatus.RUNNING,
        PipelineStage.QUEUED,
        0.0,
    )
    assert (stored.duration_s, stored.channels, stored.codec) == (1.5, 2, "pcm")
    assert (stored.min_speakers, stored.max_speakers) == (2, 3)
    assert stored.job_id is not None and str(stored.id) in stored.job_id


# --- reprocess and delete -------------------------------------------------------------------


async def test_reprocess_requeues_under_a_new_token_and_keeps_results_until_replaced(
    sessions: SessionFactory, targets: EffectTargets, agent: User, audio: Path, events: PubSub
) -> None:
    call = await succeeded(sessions, targets, await new_call(sessions, targets, agent, audio))
    await published(events)
    async with unit_of_work(sessions, targets) as session:
        restarted = await call_service.reprocess_call(session, agent, call.id, None)
    assert restarted.job_id != call.job_id
    assert (restarted.status, restarted.stage, restarted.progress) == (
        CallStatus.RUNNING,
        PipelineStage.QUEUED,
        0.0,
    )
    assert restarted.attempts == 0 and restarted.finished_at is None and restarted.error is None
    assert await job_state(targets, restarted) is JobState.QUEUED
    assert [(e.call_id, e.stage) for e in await published(events)] == [
        (call.id, PipelineStage.QUEUED)
    ]
    # The old results stay until the new run replaces them.
    assert await segment_count(sessions, call.id) == 3

    # The old job's token no longer holds the call: its writes change nothing.
    assert call.job_id is not None
    async with unit_of_work(sessions, targets) as session:
        assert await call_service.claim(session, call.id, call.job_id) is None

    # New hints replace the call's own; no hints keep them.
    async with unit_of_work(sessions, targets) as session:
        hinted = await call_service.reprocess_call(
            session, agent, call.id, SpeakerHints(num_speakers=2)
        )
    assert hinted.num_speakers == 2
    async with unit_of_work(sessions, targets) as session:
        kept = await call_service.reprocess_call(session, agent, call.id, None)
    assert kept.num_speakers == 2
    with pytest.raises(BadUserInput):
        async with unit_of_work(sessions, targets) as session:
            await call_service.reprocess_call(session, agent, call.id, SpeakerHints(0))


async def test_another_agents_call_is_missing_to_reprocess_and_delete(
    sessions: SessionFactory, targets: EffectTargets, agent: User, audio: Path, events: PubSub
) -> None:
    call = await new_call(sessions, targets, agent, audio)
    other = await make_user(sessions, "agent2")
    with pytest.raises(NotFound):
        async with unit_of_work(sessions, targets) as session:
            await call_service.reprocess_call(session, other, call.id, None)
    with pytest.raises(NotFound):
        async with unit_of_work(sessions, targets) as session:
            await call_service.delete_call(session, other, call.id)
    assert await reload(sessions, call.id) is not None
    assert await targets.storage.exists(call.storage_key)
    assert await published(events) == []


async def test_delete_removes_row_and_results_then_audio_and_tells_subscribers(
    sessions: SessionFactory, targets: EffectTargets, agent: User, audio: Path, events: PubSub
) -> None:
    call = await succeeded(sessions, targets, await new_call(sessions, targets, agent, audio))
    await published(events)
    admin = await make_user(sessions, "admin", Role.ADMIN)
    async with unit_of_work(sessions, targets) as session:
        await call_service.delete_call(session, admin, call.id)
        # Before the commit the audio is still there: a rollback would need it.
        assert await targets.storage.exists(call.storage_key)
    assert await reload(sessions, call.id) is None
    assert await segment_count(sessions, call.id) == 0
    assert not await targets.storage.exists(call.storage_key)
    [event] = await published(events)
    assert event.call_id == call.id and event.deleted and event.is_final


# --- the worker's side ----------------------------------------------------------------------


async def test_claim_starts_the_call_once_per_job_token(
    sessions: SessionFactory, targets: EffectTargets, agent: User, audio: Path, events: PubSub
) -> None:
    call = await new_call(sessions, targets, agent, audio)
    assert call.job_id is not None
    async with unit_of_work(sessions, targets) as session:
        claimed = await call_service.claim(session, call.id, call.job_id)
        assert await call_service.claim(session, call.id, "call:other-token") is None
        assert await call_service.claim(session, uuid.uuid4(), call.job_id) is None
    assert claimed is not None
    assert (claimed.stage, claimed.attempts, claimed.started_at is not None) == (
        PipelineStage.DECODING,
        1,
        True,
    )
    assert [e.stage for e in await published(events)] == [PipelineStage.DECODING]


async def test_progress_is_clamped_and_ignored_once_the_job_is_superseded(
    sessions: SessionFactory, targets: EffectTargets, agent: User, audio: Path, events: PubSub
) -> None:
    call = await new_call(sessions, targets, agent, audio)
    assert call.job_id is not None
    async with unit_of_work(sessions, targets) as session:
        high = await call_service.record_progress(
            session, call.id, call.job_id, PipelineStage.TRANSCRIBING, 1.7
        )
    assert high is not None and high.progress == 1.0
    assert [(e.stage, e.progress) for e in await published(events)] == [
        (PipelineStage.TRANSCRIBING, 1.0)
    ]
    async with unit_of_work(sessions, targets) as session:
        stale = await call_service.record_progress(
            session, call.id, "call:superseded", PipelineStage.ANALYZING, 0.5
        )
    assert stale is None
    assert await published(events) == []


async def test_results_are_saved_once_per_job_and_replaced_by_the_next_run(
    sessions: SessionFactory, targets: EffectTargets, agent: User, audio: Path, events: PubSub
) -> None:
    call = await new_call(sessions, targets, agent, audio)
    done = await succeeded(sessions, targets, call)
    assert (done.status, done.stage, done.progress) == (
        CallStatus.SUCCESS,
        PipelineStage.DONE,
        1.0,
    )
    assert done.finished_at is not None
    assert [e.status for e in await published(events)][-1] is CallStatus.SUCCESS
    assert await segment_count(sessions, call.id) == 3

    # The same job delivering again finds the call finished: nothing is written twice.
    transcript, insight = rich_results()
    assert call.job_id is not None
    async with unit_of_work(sessions, targets) as session:
        again = await call_service.save_results(
            session, call.id, call.job_id, transcript, insight, analysis_backend="test"
        )
    assert again is None
    assert await segment_count(sessions, call.id) == 3

    # A reprocessed run replaces the results as a whole.
    async with unit_of_work(sessions, targets) as session:
        rerun = await call_service.reprocess_call(session, agent, call.id, None)
    await succeeded(sessions, targets, rerun, simple_results("a different conversation"))
    assert await segment_count(sessions, call.id) == 1


async def test_a_rule_that_cannot_be_evaluated_never_fails_the_call(
    sessions: SessionFactory, targets: EffectTargets, agent: User, audio: Path, caplog: Any
) -> None:
    """A category rule an older version stored and this one cannot read: the call still
    ends SUCCESS with its results, the failure is logged with the call's id, and the other
    work of the finishing transaction (webhook deliveries) still happens."""
    async with sessions() as session, session.begin():
        session.add(Category(name="from an older version", rule={"kind": "no-such-rule"}))
        endpoint, _ = await webhook_service.create_endpoint(
            session,
            webhook_service.EndpointInput(
                url="https://crm.example.com/hooks/ovozly", events=[WebhookEvent.CALL_SUCCEEDED]
            ),
            allow_private=False,
        )
    call = await new_call(sessions, targets, agent, audio)
    with caplog.at_level(logging.ERROR, logger="app.services.call_finished"):
        done = await succeeded(sessions, targets, call)

    assert done.status is CallStatus.SUCCESS
    assert await segment_count(sessions, call.id) == 3
    assert any(str(call.id) in record.getMessage() and record.exc_info for record in caplog.records)
    async with sessions() as session:
        categories = await session.execute(
            select(func.count()).select_from(CallCategory).where(CallCategory.call_id == call.id)
        )
        assert categories.scalar_one() == 0
        deliveries = await session.execute(
            select(WebhookDelivery).where(WebhookDelivery.call_id == call.id)
        )
        assert [d.endpoint_id for d in deliveries.scalars()] == [endpoint.id]


async def test_saving_results_takes_few_round_trips_however_long_the_call(
    sessions: SessionFactory, targets: EffectTargets, agent: User, audio: Path
) -> None:
    """Per-call fixed cost: one statement deletes every earlier result, each table
    is one (pipelined) insert, so 300 turns cost the statements 3 do; and a rerun leaves no
    row of the earlier results in any table."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from app.services.results import RESULT_TABLES, result_rows
    from tests.factories import conversation_results

    async def statements_saving(call: Call, turns: int) -> list[str]:
        statements: list[str] = []

        def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            statements.append(statement)

        event.listen(Engine, "before_cursor_execute", record)
        try:
            await succeeded(sessions, targets, call, conversation_results(turns=turns))
        finally:
            event.remove(Engine, "before_cursor_execute", record)
        return statements

    short = await statements_saving(await new_call(sessions, targets, agent, audio), 3)
    call = await new_call(sessions, targets, agent, audio)
    long = await statements_saving(call, 300)
    assert len(long) == len(short), long
    deleting = [("DELETE FROM", table.__tablename__) for table in RESULT_TABLES]
    result_deletes = [s for s in long if any(f"{verb} {name} " in s for verb, name in deleting)]
    assert len(result_deletes) == 1, result_deletes
    assert await segment_count(sessions, call.id) == 300

    async with unit_of_work(sessions, targets) as session:
        rerun = await call_service.reprocess_call(session, agent, call.id, None)
    transcript, insight = simple_results("a different conversation")
    await succeeded(sessions, targets, rerun, (transcript, insight))
    expected = {
        model: len(rows)
        for model, rows in result_rows(call.id, transcript, insight, analysis_backend="test")
    }
    async with sessions() as session:
        for table in RESULT_TABLES:
            column = table.__table__.c.call_id
            count = (
                await session.execute(select(func.count()).where(column == call.id))
            ).scalar_one()
            assert count == expected[table], table.__tablename__


async def test_fail_ends_the_running_call_of_its_job_or_of_any_job(
    sessions: SessionFactory, targets: EffectTargets, agent: User, audio: Path, events: PubSub
) -> None:
    first = await new_call(sessions, targets, agent, audio)
    second = await new_call(sessions, targets, agent, audio)
    async with unit_of_work(sessions, targets) as session:
        assert await call_service.fail(session, first.id, "call:stale", "nope") is None
        failed = await call_service.fail(session, first.id, first.job_id, "The audio is bad")
        # Recovery fails a call whatever job holds it.
        any_job = await call_service.fail(session, second.id, None, "Gave up")
    assert failed is not None and failed.status is CallStatus.FAIL
    assert failed.error == "The audio is bad" and failed.finished_at is not None
    assert any_job is not None and any_job.status is CallStatus.FAIL
    assert {(e.call_id, e.status) for e in await published(events)} == {
        (first.id, CallStatus.FAIL),
        (second.id, CallStatus.FAIL),
    }
    # A finished call stays as it ended.
    async with unit_of_work(sessions, targets) as session:
        assert await call_service.fail(session, first.id, None, "again") is None
    stored = await reload(sessions, first.id)
    assert stored is not None and stored.error == "The audio is bad"


# --- recovery -------------------------------------------------------------------------------


async def idle(sessions: SessionFactory, call: Call, **values: object) -> Call:
    """The call as the sweep reads it after it went quiet ten minutes ago."""
    async with sessions() as session, session.begin():
        await session.execute(
            update(Call)
            .where(Call.id == call.id)
            .values(updated_at=datetime.now(UTC) - timedelta(minutes=10), **values)
        )
    async with sessions() as session:
        candidates = await call_service.running_calls_idle_since(session, timedelta(seconds=90))
    [candidate] = [c for c in candidates if c.id == call.id]
    return candidate


async def test_recovery_requeues_a_stalled_call_or_fails_it_after_its_tries(
    sessions: SessionFactory, targets: EffectTargets, agent: User, audio: Path, events: PubSub
) -> None:
    orphan = await idle(
        sessions, await new_call(sessions, targets, agent, audio), stage=PipelineStage.DIARIZING
    )
    exhausted = await idle(sessions, await new_call(sessions, targets, agent, audio), attempts=3)
    async with sessions() as session:
        fresh = await call_service.running_calls_idle_since(session, timedelta(seconds=90))
    assert {c.id for c in fresh} == {orphan.id, exhausted.id}

    async with unit_of_work(sessions, targets) as session:
        requeued = await call_service.recover(session, orphan, max_tries=3)
    assert requeued is not None and requeued.job_id != orphan.job_id
    assert (requeued.stage, requeued.progress) == (PipelineStage.QUEUED, 0.0)
    assert await job_state(targets, requeued) is JobState.QUEUED

    async with unit_of_work(sessions, targets) as session:
        gave_up = await call_service.recover(session, exhausted, max_tries=3)
    assert gave_up is not None and gave_up.status is CallStatus.FAIL
    assert gave_up.error is not None and "stopped 3 times" in gave_up.error
    assert [(e.call_id, e.status) for e in await published(events)] == [
        (orphan.id, CallStatus.RUNNING),
        (exhausted.id, CallStatus.FAIL),
    ]


async def test_recovery_leaves_a_call_that_changed_since_it_was_read(
    sessions: SessionFactory, targets: EffectTargets, agent: User, audio: Path
) -> None:
    candidate = await idle(sessions, await new_call(sessions, targets, agent, audio))
    assert candidate.job_id is not None
    # A job claims it between the sweep's read and its lock: claiming touches the call. The
    # sweep tells a change by `updated_at`, so the clock must move on between the two.
    await asyncio.sleep(0.01)
    async with unit_of_work(sessions, targets) as session:
        assert await call_service.claim(session, candidate.id, candidate.job_id) is not None
    async with unit_of_work(sessions, targets) as session:
        assert await call_service.recover(session, candidate, max_tries=3) is None
    stored = await reload(sessions, candidate.id)
    assert stored is not None and stored.job_id == candidate.job_id
    assert stored.stage is PipelineStage.DECODING
