"""Voiceprints on real voices: two-party mono calls assembled from the shared single-speaker
recordings, diarized by the local diarizer, learned and matched through the service."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.core.enums import RoleSource, SpeakerRole
from app.db.engine import SessionFactory
from app.db.models import User, VoiceprintSample
from app.ml.diarization import speaker_embedder
from app.ml.diarization.base import Diarization
from app.ml.diarization.local import LocalDiarizer
from app.ml.speech.vad import SileroVad
from app.ml.voiceprints.matching import match_agent
from app.services import audit
from app.services import voiceprints as voiceprint_service
from tests.factories import make_user
from tests.ml.voiceprints.assembled import (
    EAGLE_AGENT,
    LIBRI_SPEAKERS,
    USC_AGENT,
    AssembledCall,
    assemble,
)
from tests.ml.voiceprints.helpers import LIBRI, as_transcript, diarize, learn, two_party

pytestmark = pytest.mark.usefixtures("clean_database")

AGENT_TALK_TARGET = 0.95


@pytest.fixture(scope="module")
def diarizer() -> LocalDiarizer:
    return LocalDiarizer(SileroVad(), speaker_embedder("cpu"))


def agent_talk_as_agent(
    call: AssembledCall, diarization: Diarization, roles: dict[str, SpeakerRole]
) -> float:
    """Share of the agent's talk time (the reference's agent turns, where the diarizer
    found speech: a role is only ever given to speech found) that goes to AGENT speakers."""
    found = 0.0
    as_agent = 0.0
    for ref in call.turns:
        if ref.speaker != "agent":
            continue
        for turn in diarization.turns:
            shared = max(0.0, min(ref.end_s, turn.end_s) - max(ref.start_s, turn.start_s))
            found += shared
            if roles.get(turn.speaker) is SpeakerRole.AGENT:
                as_agent += shared
    return as_agent / found


@pytest.mark.parametrize(
    ("agent_clips", "earlier", "new"),
    [
        (USC_AGENT, [[0], [1], [2]], [3, 0]),
        (LIBRI_SPEAKERS[LIBRI[0]], [[0], [1], [2]], [3, 4, 5]),
        (EAGLE_AGENT, [[0], [1], [2]], [2, 0]),
    ],
    ids=["usc-uzbek", "librispeech", "picovoice"],
)
async def test_an_agent_with_three_earlier_mono_calls_is_told_by_voice(
    sessions: SessionFactory,
    diarizer: LocalDiarizer,
    test_audio_dir: Path,
    agent_clips: list[str],
    earlier: list[list[int]],
    new: list[int],
) -> None:
    owner = await make_user(sessions, "agent1")
    for n, clips in enumerate(earlier):
        call = two_party(test_audio_dir, [agent_clips[i] for i in clips], first_customer=3 * n)
        await learn(sessions, owner, as_transcript(call, diarize(diarizer, call)))
    async with sessions() as session:
        stored = await voiceprint_service.voiceprint_of(session, owner.id)
        candidates = await session.scalar(
            select(func.count())
            .select_from(VoiceprintSample)
            .where(VoiceprintSample.kind != "AGENT")
        )
    assert stored is not None and stored.enrolled and stored.calls == 3
    # Once the agent's voice is found, the other voices' embeddings are deleted.
    assert candidates == 0

    call = two_party(test_audio_dir, [agent_clips[i] for i in new], first_customer=20)
    diarization = diarize(diarizer, call)
    async with sessions() as session:
        voice = await voiceprint_service.agent_voice(
            session, owner.id, min_calls=3, exclude_call=uuid.uuid4()
        )
    assert voice is not None and voice.calls == 3
    assert diarization.speaker_embeddings is not None
    decisions = match_agent(diarization.speaker_embeddings, voice)
    roles = {speaker: d.role for speaker, d in decisions.items()}
    assert list(roles.values()).count(SpeakerRole.AGENT) == 1
    assert set(roles.values()) == {SpeakerRole.AGENT, SpeakerRole.CUSTOMER}
    assert all(d.source is RoleSource.VOICE for d in decisions.values())
    assert all(d.confidence is not None and 0.5 <= d.confidence <= 1.0 for d in decisions.values())
    assert agent_talk_as_agent(call, diarization, roles) >= AGENT_TALK_TARGET


async def test_one_call_is_never_enough_and_reprocessing_learns_nothing_new(
    sessions: SessionFactory, diarizer: LocalDiarizer, test_audio_dir: Path
) -> None:
    owner = await make_user(sessions, "agent1")
    call = two_party(test_audio_dir, USC_AGENT[:2], first_customer=0)
    transcript = as_transcript(call, diarize(diarizer, call))
    call_id = await learn(sessions, owner, transcript, min_calls=2)
    # The same call again (a reprocess) replaces its own samples: still one call.
    await learn(sessions, owner, transcript, call_id=call_id, min_calls=2)
    async with sessions() as session:
        stored = await voiceprint_service.voiceprint_of(session, owner.id)
        voice = await voiceprint_service.agent_voice(
            session, owner.id, min_calls=2, exclude_call=uuid.uuid4()
        )
    assert stored is not None and not stored.enrolled and stored.calls == 1
    assert stored.embedding is None
    assert voice is None


async def test_deleting_the_voiceprint_starts_learning_again_and_inactive_users_are_ignored(
    sessions: SessionFactory, diarizer: LocalDiarizer, test_audio_dir: Path
) -> None:
    owner = await make_user(sessions, "agent1")
    for n in range(2):
        call = two_party(test_audio_dir, [USC_AGENT[n]], first_customer=5 * n)
        await learn(sessions, owner, as_transcript(call, diarize(diarizer, call)), min_calls=2)
    async with sessions() as session:
        assert await voiceprint_service.agent_voice(
            session, owner.id, min_calls=2, exclude_call=uuid.uuid4()
        )
    async with sessions() as session, session.begin():
        (await session.get(User, owner.id)).is_active = False  # type: ignore[union-attr]
    async with sessions() as session:
        assert (
            await voiceprint_service.agent_voice(
                session, owner.id, min_calls=2, exclude_call=uuid.uuid4()
            )
            is None
        )
    async with sessions() as session, session.begin():
        (await session.get(User, owner.id)).is_active = True  # type: ignore[union-attr]
        await voiceprint_service.delete_voiceprint(session, audit.SYSTEM, owner.id)
    async with sessions() as session:
        assert await voiceprint_service.voiceprint_of(session, owner.id) is None
        assert (
            await voiceprint_service.agent_voice(
                session, owner.id, min_calls=2, exclude_call=uuid.uuid4()
            )
            is None
        )
        samples = await session.scalar(select(func.count()).select_from(VoiceprintSample))
    assert samples == 0


async def test_a_call_without_the_agent_delays_enrolment_but_never_blocks_it(
    sessions: SessionFactory, diarizer: LocalDiarizer, test_audio_dir: Path
) -> None:
    owner = await make_user(sessions, "agent1")
    other = LIBRI_SPEAKERS[LIBRI[1]]
    stranger = assemble(
        test_audio_dir, [("customer", other[0]), ("other", LIBRI_SPEAKERS[LIBRI[2]][0])]
    )
    calls = [
        two_party(test_audio_dir, [USC_AGENT[0]], first_customer=3),
        stranger,
        two_party(test_audio_dir, [USC_AGENT[1]], first_customer=9),
        two_party(test_audio_dir, [USC_AGENT[2]], first_customer=15),
        two_party(test_audio_dir, [USC_AGENT[3]], first_customer=21),
    ]
    enrolled_after = None
    for n, call in enumerate(calls, start=1):
        await learn(sessions, owner, as_transcript(call, diarize(diarizer, call)))
        async with sessions() as session:
            stored = await voiceprint_service.voiceprint_of(session, owner.id)
        if stored is not None and stored.enrolled and enrolled_after is None:
            enrolled_after = n
    assert enrolled_after is not None and enrolled_after >= 4
    async with sessions() as session:
        candidates = await session.scalar(
            select(func.count())
            .select_from(VoiceprintSample)
            .where(VoiceprintSample.kind != "AGENT")
        )
    assert candidates == 0
