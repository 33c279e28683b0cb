"""Calls: a stored recording and its queued call as an upload leaves them, a bare call row,
and finished calls whose results the calls service saved as the worker's job does.

Factories write rows directly (as a migration-built database would hold them) and take a
session factory: no engine is opened per object. Lifecycle rules are the calls service's and
are tested there; these only set the stage."""

from __future__ import annotations

import uuid
from pathlib import Path

from app.api.resources import Resources
from app.core.queue import JobQueue
from app.db.engine import SessionFactory
from app.db.models import Call
from app.ml.types import SpeakerHints
from app.services.calls import new_call, save_results
from app.services.effects import EffectTargets, unit_of_work
from app.services.redacted_audio import REDACTED_PREFIX, MaskedSpan, StoredRedaction
from app.services.uploads import AudioInfo, StoredUpload, probe_audio
from app.storage import ObjectStorage, new_object_key
from tests.factories.results import CallSpec, spec_results


async def make_call(
    sessions: SessionFactory,
    storage: ObjectStorage,
    owner_id: uuid.UUID,
    audio: Path,
    *,
    probe: bool = True,
    queue: JobQueue | None = None,
    hints: SpeakerHints | None = None,
) -> Call:
    """A stored recording and its RUNNING/QUEUED call, as an upload leaves them. Its job is
    enqueued when `queue` is given (without, it stands for a call whose enqueue was lost).
    `probe=False` plants a file the upload would have rejected."""
    key = new_object_key()
    await storage.put_file(key, audio)
    info = (
        probe_audio(audio)
        if probe
        else AudioInfo(duration_s=1.0, channels=1, sample_rate=16000, codec="unknown", container="")
    )
    upload = StoredUpload(key, audio.name, audio.stat().st_size, "0" * 64, info)
    async with sessions() as session, session.begin():
        call = new_call(owner_id, upload, hints or SpeakerHints())
        session.add(call)
        await session.flush()
        await session.refresh(call)
    if queue is not None:
        assert call.job_id is not None
        await queue.enqueue_process_call(call.id, call.job_id, call.duration_s)
    return call


async def uploaded_call(
    resources: Resources,
    owner_id: uuid.UUID,
    audio: Path,
    *,
    probe: bool = True,
    enqueue: bool = True,
) -> Call:
    """`make_call` on the app's own resources, its job enqueued (without `enqueue`, it stands
    for a call whose enqueue was lost)."""
    return await make_call(
        resources.sessions,
        resources.storage,
        owner_id,
        audio,
        probe=probe,
        queue=resources.queue if enqueue else None,
    )


async def finished_call(
    sessions: SessionFactory,
    targets: EffectTargets,
    owner_id: uuid.UUID,
    spec: CallSpec,
    *,
    storage: ObjectStorage | None = None,
    audio: Path | None = None,
    redacted_audio: Path | None = None,
    redactions: list[MaskedSpan] | None = None,
) -> Call:
    """A SUCCESS call whose results the calls service saved, as the worker's job does: its
    categories and scorecards evaluated and its webhook deliveries enqueued after the commit.
    With `storage` and `audio`, the recording is stored too; with `redacted_audio`, a
    redacted copy (what agents hear) and its `redactions`."""
    key = new_object_key()
    if storage is not None and audio is not None:
        await storage.put_file(key, audio)
    redaction: StoredRedaction | None = None
    if storage is not None and redacted_audio is not None:
        redacted_key = new_object_key(REDACTED_PREFIX)
        await storage.put_file(redacted_key, redacted_audio)
        redaction = StoredRedaction(redacted_key, tuple(redactions or ()))
    duration = spec.duration_s or max((t.end_s for t in spec.turns), default=1.0)
    info = AudioInfo(
        duration_s=duration, channels=1, sample_rate=16000, codec="pcm_s16le", container="wav"
    )
    size = audio.stat().st_size if audio is not None else 1000
    upload = StoredUpload(key, audio.name if audio else "call.wav", size, "ab" * 32, info)
    async with sessions() as session, session.begin():
        call = new_call(owner_id, upload, SpeakerHints())
        session.add(call)
        await session.flush()
        if spec.created_at is not None:
            call.created_at = spec.created_at
        await session.flush()
        await session.refresh(call)
    assert call.job_id is not None
    transcript, insight = spec_results(spec, duration)
    async with unit_of_work(sessions, targets) as session:
        saved = await save_results(
            session,
            call.id,
            call.job_id,
            transcript,
            insight,
            analysis_backend="test",
            redaction=redaction,
        )
    assert saved is not None
    return saved


async def make_call_row(sessions: SessionFactory, owner_id: uuid.UUID) -> uuid.UUID:
    """A call row and nothing else (no stored recording, no job): for tests of what hangs
    off a call, such as voiceprints learnt from it."""
    async with sessions() as session, session.begin():
        call = Call(
            owner_id=owner_id,
            filename="call.wav",
            storage_key=f"calls/{uuid.uuid4().hex}",
            sha256="0" * 64,
            size_bytes=1,
        )
        session.add(call)
        await session.flush()
        return call.id
