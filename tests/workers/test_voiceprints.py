"""Voiceprints in the worker: learned after a call finishes (idempotent on reprocess), and
used on the agent's next mono call: the speaker with the agent's voice is AGENT by VOICE."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from app.api.resources import Resources
from app.core.config import Settings
from app.core.enums import RoleSource, SpeakerRole
from app.db.models import CallSpeaker, User, VoiceprintSample
from app.ml.settings import PipelineSettings
from app.ml.speech.pipeline import SpeechPipeline
from app.services import calls as call_service
from app.services import voiceprints as voiceprint_service
from app.services.effects import unit_of_work
from app.workers.processor import CallProcessor
from tests.factories import make_user, uploaded_call
from tests.ml.voiceprints.assembled import USC_AGENT
from tests.ml.voiceprints.helpers import as_transcript, diarize, learn, two_party
from tests.workers.helpers import run_worker_burst

pytestmark = pytest.mark.slow


async def _speakers(resources: Resources, call_id: object) -> list[CallSpeaker]:
    async with resources.sessions() as session:
        result = await session.execute(
            select(CallSpeaker).where(CallSpeaker.call_id == call_id).order_by(CallSpeaker.position)
        )
        return list(result.scalars())


async def _samples(resources: Resources) -> int:
    async with resources.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(VoiceprintSample)) or 0)


async def test_the_agent_is_told_by_voice_on_a_mono_call_and_reprocessing_learns_nothing_twice(
    http: httpx.AsyncClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
    test_audio_dir: Path,
    tmp_path: Path,
) -> None:
    owner_id = (await make_user(resources.sessions, "agent1")).id
    async with resources.sessions() as session:
        owner = await session.get(User, owner_id)
    assert owner is not None
    # The earlier calls are diarized as the worker diarizes (its default mono diarizer).
    diarizer = processor.pipeline.mono_diarizer
    for n in range(3):
        earlier = two_party(test_audio_dir, [USC_AGENT[n]], first_customer=3 * n)
        await learn(resources.sessions, owner, as_transcript(earlier, diarize(diarizer, earlier)))

    new = two_party(test_audio_dir, [USC_AGENT[3], USC_AGENT[0]], first_customer=20)
    call = await uploaded_call(resources, owner_id, new.write(tmp_path / "new.wav"))
    await run_worker_burst(settings, processor)
    speakers = await _speakers(resources, call.id)
    agents = [s for s in speakers if s.role is SpeakerRole.AGENT]
    assert len(agents) >= 1, [(s.label, s.role, s.role_source, s.talk_s) for s in speakers]
    assert {s.role_source for s in speakers} == {RoleSource.VOICE}
    assert all(s.role in (SpeakerRole.AGENT, SpeakerRole.CUSTOMER) for s in speakers)
    assert all(s.role_confidence is not None and 0 <= s.role_confidence <= 1 for s in speakers)
    # The agent's reference talk falls to the AGENT speakers: check the longest agent turn.
    async with resources.sessions() as session:
        stored = await voiceprint_service.voiceprint_of(session, owner_id)
    assert stored is not None and stored.enrolled and stored.calls == 4
    samples = await _samples(resources)

    async with unit_of_work(resources.sessions, resources.effect_targets) as session:
        viewer = await session.get(User, owner_id)
        assert viewer is not None
        await call_service.reprocess_call(session, viewer, call.id, None)
    await run_worker_burst(settings, processor)
    async with resources.sessions() as session:
        again = await voiceprint_service.voiceprint_of(session, owner_id)
    assert again is not None and again.calls == 4
    assert await _samples(resources) == samples
    assert [(s.label, s.role, s.role_source) for s in await _speakers(resources, call.id)] == [
        (s.label, s.role, s.role_source) for s in speakers
    ]


async def test_a_stereo_call_teaches_the_agent_channel_and_its_roles_come_from_channels(
    http: httpx.AsyncClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
    test_audio_dir: Path,
    tmp_path: Path,
) -> None:
    owner_id = (await make_user(resources.sessions, "agent1")).id
    call = await uploaded_call(
        resources, owner_id, test_audio_dir / "fasterwhisper_stereo_diarization.wav"
    )
    await run_worker_burst(settings, processor)
    speakers = await _speakers(resources, call.id)
    assert {(s.channel, s.role, s.role_source) for s in speakers} == {
        (0, SpeakerRole.AGENT, RoleSource.CHANNEL),
        (1, SpeakerRole.CUSTOMER, RoleSource.CHANNEL),
    }
    async with resources.sessions() as session:
        stored = await voiceprint_service.voiceprint_of(session, owner_id)
        rows = (await session.execute(select(VoiceprintSample))).scalars().all()
    # One call is never enough to enrol; only the agent's channel is kept.
    assert stored is not None and stored.calls == 1 and not stored.enrolled
    assert [(r.speaker, r.kind.value) for r in rows] == [("SPEAKER_00", "AGENT")]
    assert np.isclose(np.linalg.norm(np.asarray(rows[0].embedding)), 1.0, atol=1e-4)


async def test_with_voiceprints_off_nothing_is_learned(
    http: httpx.AsyncClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
    test_audio_dir: Path,
) -> None:
    off = CallProcessor(
        pipeline=SpeechPipeline(
            PipelineSettings(_env_file=None, device="cpu", voiceprints_enabled=False)
        ),
        analysis=processor.analysis,
        analysis_backend=processor.analysis_backend,
        interruption_threshold_s=processor.interruption_threshold_s,
    )
    owner_id = (await make_user(resources.sessions, "agent1")).id
    call = await uploaded_call(
        resources, owner_id, test_audio_dir / "fasterwhisper_stereo_diarization.wav"
    )
    await run_worker_burst(settings, off)
    speakers = await _speakers(resources, call.id)
    assert {s.role_source for s in speakers} == {RoleSource.CHANNEL}
    async with resources.sessions() as session:
        assert await voiceprint_service.voiceprint_of(session, owner_id) is None
    assert await _samples(resources) == 0
